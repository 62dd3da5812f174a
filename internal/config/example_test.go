package config

import (
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

const examplePath = "../../config.example.hcl"

// TestExampleFile checks that config.example.hcl loads, validates, and
// states the defaults truthfully.
func TestExampleFile(t *testing.T) {
	t.Setenv(EnvConnectionToken, "")
	t.Setenv(EnvGossipKeys, "")
	t.Setenv(EnvAdminToken, "")
	got, err := Load(examplePath)
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := Default()
	want.Backends = []Backend{{Address: "127.0.0.1:4322", Weight: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example file differs from the defaults\n got: %+v\nwant: %+v", got, want)
	}
}

// TestExampleFileHasEveryOption checks that every attribute and block the
// loader knows appears in config.example.hcl, so the example cannot fall
// behind the schema.
func TestExampleFileHasEveryOption(t *testing.T) {
	src, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	file, diags := hclsyntax.ParseConfig(src, examplePath, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	have := map[string]bool{}
	collectNames(file.Body.(*hclsyntax.Body), "", have)

	want := map[string]bool{}
	schemaNames(reflect.TypeFor[fileConfig](), "", want)
	if len(want) < 30 {
		t.Fatalf("schema walk found only %d names; the walk is broken", len(want))
	}
	var missing []string
	for name := range want {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("config.example.hcl lacks %s", strings.Join(missing, ", "))
	}
}

// collectNames records the dotted names of every attribute and block in body.
func collectNames(body *hclsyntax.Body, prefix string, names map[string]bool) {
	for name := range body.Attributes {
		names[prefix+name] = true
	}
	for _, b := range body.Blocks {
		names[prefix+b.Type] = true
		collectNames(b.Body, prefix+b.Type+".", names)
	}
}

// schemaNames records the dotted names of every hcl-tagged field of t.
func schemaNames(t reflect.Type, prefix string, names map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, kind, _ := strings.Cut(f.Tag.Get("hcl"), ",")
		switch kind {
		case "optional":
			names[prefix+name] = true
		case "block":
			names[prefix+name] = true
			elem := f.Type
			for elem.Kind() == reflect.Pointer || elem.Kind() == reflect.Slice {
				elem = elem.Elem()
			}
			schemaNames(elem, prefix+name+".", names)
		}
	}
}
