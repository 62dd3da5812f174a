package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// sources records where a file sets each setting, keyed by the setting's
// name as FieldError spells it ("listen", "ring.load",
// `backend "10.0.0.1:4322".weight`, `backend "10.0.0.1:4322"` for the block
// itself). Validate uses it to give a bad value the file and line it came
// from; a setting absent from it came from a default, the environment or a
// flag.
type sources map[string]hcl.Range

// blockPrototypes are the file* types of the blocks, by block type, whose
// attribute names sourcesOf reads through gohcl's schema.
var blockPrototypes = map[string]any{
	"limits":   &fileLimits{},
	"upstream": &fileUpstream{},
	"ring":     &fileRing{},
	"backend":  &fileBackend{},
	"pool":     &filePool{},
	"health":   &fileHealth{},
	"gossip":   &fileGossip{},
	"agent":    &fileAgent{},
}

// sourcesOf returns where body sets each setting. body has already been
// decoded without errors, so the schema matches and problems are ignored.
func sourcesOf(body hcl.Body) sources {
	src := sources{}
	schema, _ := gohcl.ImpliedBodySchema(&fileConfig{})
	content, _, _ := body.PartialContent(schema)
	if content == nil {
		return src
	}
	for name, attr := range content.Attributes {
		src[name] = attr.Range
	}
	for _, b := range content.Blocks {
		proto, ok := blockPrototypes[b.Type]
		if !ok {
			continue
		}
		prefix := b.Type
		if b.Type == "backend" && len(b.Labels) == 1 {
			prefix = fmt.Sprintf("backend %q", b.Labels[0])
		}
		src[prefix] = b.DefRange
		bs, _ := gohcl.ImpliedBodySchema(proto)
		bc, _, _ := b.Body.PartialContent(bs)
		if bc == nil {
			continue
		}
		for name, attr := range bc.Attributes {
			src[prefix+"."+name] = attr.Range
		}
	}
	return src
}

// lookup returns where the file sets field; an element of a list
// ("gossip.join[1]") is found at its list.
func (s sources) lookup(field string) (hcl.Range, bool) {
	if r, ok := s[field]; ok {
		return r, true
	}
	if i := strings.LastIndexByte(field, '['); i > 0 && strings.HasSuffix(field, "]") {
		r, ok := s[field[:i]]
		return r, ok
	}
	return hcl.Range{}, false
}

// forget drops the sources of settings a flag replaced.
func (s sources) forget(fields ...string) {
	for _, f := range fields {
		delete(s, f)
	}
}
