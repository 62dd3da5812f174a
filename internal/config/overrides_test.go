package config

import (
	"reflect"
	"testing"
)

func TestApply(t *testing.T) {
	three := 3
	zero := 0
	fileBackends := []Backend{
		{Address: "10.0.0.1:4322", Token: "one", Weight: 2},
		{Address: "10.0.0.2:4322", Token: "two", Weight: 1},
	}
	tests := []struct {
		name string
		o    Overrides
		want func(c *Config)
	}{
		{name: "nothing set changes nothing", o: Overrides{}},
		{
			name: "scalars",
			o:    Overrides{Listen: "127.0.0.1:0", LogLevel: LogDebug, Spawn: &three},
			want: func(c *Config) {
				c.Listen = "127.0.0.1:0"
				c.LogLevel = LogDebug
				c.Pool.Spawn = 3
			},
		},
		{
			name: "spawn set to zero",
			o:    Overrides{Spawn: &zero},
			want: func(c *Config) { c.Pool.Spawn = 0 },
		},
		{
			name: "backends replace the file's list, keeping a known address's token",
			o:    Overrides{Backends: []string{"10.0.0.3:4322", "10.0.0.2:4322"}},
			want: func(c *Config) {
				c.Backends = []Backend{
					{Address: "10.0.0.3:4322", Weight: 1},
					{Address: "10.0.0.2:4322", Token: "two", Weight: 1},
				}
			},
		},
		{
			name: "comma-separated backends",
			o:    Overrides{Backends: []string{"10.0.0.1:4322, 10.0.0.9:1", ""}},
			want: func(c *Config) {
				c.Backends = []Backend{
					{Address: "10.0.0.1:4322", Token: "one", Weight: 2},
					{Address: "10.0.0.9:1", Weight: 1},
				}
			},
		},
		{
			name: "an empty non-nil list removes every static backend",
			o:    Overrides{Backends: []string{}},
			want: func(c *Config) { c.Backends = nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := func() *Config {
				c := Default()
				c.Listen = ":1"
				c.LogLevel = LogWarn
				c.Pool.Spawn = 2
				c.Backends = append([]Backend(nil), fileBackends...)
				return c
			}
			got := base()
			got.Apply(tt.o)
			want := base()
			if tt.want != nil {
				tt.want(want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Apply mismatch\n got: %+v\nwant: %+v", got, want)
			}
		})
	}
}

func TestApplyDuplicateBackendIsInvalid(t *testing.T) {
	c := Default()
	c.Apply(Overrides{Backends: []string{"127.0.0.1:4322", "127.0.0.1:4322"}})
	if err := c.Validate(); err == nil {
		t.Fatal("Validate() = nil, want a duplicate backend error")
	}
}
