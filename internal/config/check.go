package config

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Check loads the file at path as `rpcproxy serve --config` would (the
// defaults, the file, the environment) and validates the result, for
// `rpcproxy validate`. Problems in the file come back as *FileError; a
// setting that fails validation comes back as a *FileError at the line
// that sets it, or as its *FieldError when the file does not set it (a
// value from the environment). All problems are joined; nil means the file
// is usable.
func Check(path string) error {
	cfg, err := Load(path)
	if err != nil {
		return err
	}
	verr := cfg.Validate()
	if verr == nil {
		return nil
	}
	var pos map[string]hcl.Pos
	if src, err := os.ReadFile(path); err == nil {
		pos = settingPositions(src, path)
	}
	var errs []error
	for _, e := range unjoin(verr) {
		var fe *FieldError
		if errors.As(e, &fe) {
			if p, ok := positionOf(pos, fe.Field); ok {
				errs = append(errs, &FileError{File: path, Line: p.Line, Column: p.Column, Summary: fe.Error()})
				continue
			}
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// settingPositions maps each setting of a native HCL file, named as
// FieldError names it ("health.timeout", `backend "10.0.0.1:4322".weight`),
// to where it starts. A JSON file gives none.
func settingPositions(src []byte, filename string) map[string]hcl.Pos {
	if strings.HasSuffix(filename, ".json") {
		return nil
	}
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil
	}
	out := map[string]hcl.Pos{}
	var walk func(body *hclsyntax.Body, prefix string)
	walk = func(body *hclsyntax.Body, prefix string) {
		for name, a := range body.Attributes {
			out[prefix+name] = a.SrcRange.Start
		}
		for _, b := range body.Blocks {
			key := b.Type
			for _, l := range b.Labels {
				key += " " + strconv.Quote(l)
			}
			if _, seen := out[prefix+key]; !seen {
				out[prefix+key] = b.TypeRange.Start
			}
			walk(b.Body, prefix+key+".")
		}
	}
	walk(file.Body.(*hclsyntax.Body), "")
	return out
}

// positionOf finds a field's position: the setting itself, else (for an
// item such as "gossip.join[1]") the list, else the enclosing block.
func positionOf(pos map[string]hcl.Pos, field string) (hcl.Pos, bool) {
	if i := strings.LastIndexByte(field, '['); i > 0 && strings.HasSuffix(field, "]") {
		field = field[:i]
	}
	for field != "" {
		if p, ok := pos[field]; ok {
			return p, true
		}
		i := strings.LastIndexByte(field, '.')
		if i < 0 || strings.Count(field[i:], `"`) != 0 {
			break
		}
		field = field[:i]
	}
	return hcl.Pos{}, false
}
