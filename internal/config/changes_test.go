package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every setting but the backend blocks is named by Changed when it differs,
// so a reload can say which ones need a restart.
func TestChangedCoversEverySetting(t *testing.T) {
	base := Default()
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Name == "Backends" {
				continue
			}
			fv := v.Field(i)
			name := strings.TrimPrefix(path+"."+f.Name, ".")
			if fv.Kind() == reflect.Struct {
				walk(name, fv)
				continue
			}
			t.Run(name, func(t *testing.T) {
				next := Default()
				target := reflect.ValueOf(next).Elem().FieldByIndex(fieldIndex(t, reflect.TypeOf(*next), name))
				switch target.Kind() {
				case reflect.String:
					target.SetString(target.String() + "x")
				case reflect.Bool:
					target.SetBool(!target.Bool())
				case reflect.Int, reflect.Int64:
					if target.Type() == reflect.TypeOf(time.Duration(0)) {
						target.SetInt(target.Int() + int64(time.Second))
					} else {
						target.SetInt(target.Int() + 1)
					}
				case reflect.Float64:
					target.SetFloat(target.Float() + 1)
				case reflect.Slice:
					target.Set(reflect.ValueOf([]string{"x"}))
				default:
					t.Fatalf("kind %s not handled", target.Kind())
				}
				got := Changed(base, next)
				if len(got) != 1 {
					t.Fatalf("Changed = %v, want exactly one setting for %s", got, name)
				}
			})
		}
	}
	walk("", reflect.ValueOf(*base))
	if got := Changed(base, Default()); got != nil {
		t.Errorf("Changed of equal configurations = %v", got)
	}
}

func fieldIndex(t *testing.T, typ reflect.Type, path string) []int {
	t.Helper()
	var index []int
	for _, part := range strings.Split(path, ".") {
		f, ok := typ.FieldByName(part)
		if !ok {
			t.Fatalf("no field %s", path)
		}
		index = append(index, f.Index...)
		typ = f.Type
	}
	return index
}

func TestChangedNames(t *testing.T) {
	a, b := Default(), Default()
	b.Listen = ":1"
	b.Ring.Load = 2
	b.ConnectionToken = "secret"
	b.Backends = []Backend{{Address: "h:1", Weight: 1}} // compared elsewhere
	got := Changed(a, b)
	if want := []string{"listen", "connection_token", "ring.load"}; !slices.Equal(got, want) {
		t.Errorf("Changed = %v, want %v", got, want)
	}
}
