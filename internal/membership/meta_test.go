package membership

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []Meta{
		{Role: RoleProxy},
		{Role: RoleProxy, Version: "rpcproxy 0.1"},
		{Role: RoleBackend, Addr: "10.0.0.5:4321"},
		{Role: RoleBackend, Addr: "[::1]:4321", Weight: MaxWeight, Draining: true, Healthy: true, ProtocolVersion: 3, Version: "1.0.102"},
		{Role: RoleBackend, Addr: "cli-7.internal.example:4321", Weight: 3, Healthy: true},
	}
	for _, m := range tests {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%+v): %v", m, err)
		}
		if !strings.HasPrefix(string(b), `{"v":1,`) {
			t.Fatalf("encoding %s does not start with the format number", b)
		}
		var got Meta
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary(%s): %v", b, err)
		}
		if got != m {
			t.Fatalf("round trip of %+v gave %+v", m, got)
		}
	}
}

func TestMetaLargestFitsLimit(t *testing.T) {
	t.Parallel()
	host := strings.Repeat("h", MaxAddrLen-len(":65535"))
	m := Meta{
		Role: RoleBackend, Addr: host + ":65535", Weight: MaxWeight, Draining: true, Healthy: true,
		ProtocolVersion: 255, Version: strings.Repeat("v", MaxVersionLen),
	}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxMetaSize {
		t.Fatalf("largest plain meta is %d bytes, limit %d", len(b), MaxMetaSize)
	}
	t.Logf("largest plain meta: %d bytes", len(b))

	// "<" expands 6x in JSON (\u003c); the size check must catch it.
	m.Version = strings.Repeat("<", MaxVersionLen)
	if _, err := m.MarshalBinary(); !errors.Is(err, ErrInvalidMeta) {
		t.Fatalf("oversize encoding: err = %v, want ErrInvalidMeta", err)
	}
}

func TestMetaValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    Meta
		ok   bool
	}{
		{"proxy", Meta{Role: RoleProxy}, true},
		{"backend", Meta{Role: RoleBackend, Addr: "127.0.0.1:1"}, true},
		{"no role", Meta{}, false},
		{"unknown role", Meta{Role: "router"}, false},
		{"backend without addr", Meta{Role: RoleBackend}, false},
		{"addr without port", Meta{Role: RoleBackend, Addr: "127.0.0.1"}, false},
		{"addr port 0", Meta{Role: RoleBackend, Addr: "127.0.0.1:0"}, false},
		{"addr empty host", Meta{Role: RoleBackend, Addr: ":80"}, false},
		{"addr too long", Meta{Role: RoleBackend, Addr: strings.Repeat("a", MaxAddrLen) + ":1"}, false},
		{"negative weight", Meta{Role: RoleProxy, Weight: -1}, false},
		{"weight too big", Meta{Role: RoleProxy, Weight: MaxWeight + 1}, false},
		{"protocol too big", Meta{Role: RoleProxy, ProtocolVersion: 256}, false},
		{"version too long", Meta{Role: RoleProxy, Version: strings.Repeat("v", MaxVersionLen+1)}, false},
		{"version with a newline", Meta{Role: RoleProxy, Version: "1.0\nlevel=error"}, false},
	}
	for _, tt := range tests {
		err := tt.m.Validate()
		if tt.ok != (err == nil) {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidMeta) {
			t.Errorf("%s: error %v does not wrap ErrInvalidMeta", tt.name, err)
		}
	}
}

func TestMetaDecodeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", ``, ErrMetaVersion},
		{"no version", `{"role":"proxy"}`, ErrMetaVersion},
		{"version 0", `{"v":0,"role":"proxy"}`, ErrMetaVersion},
		{"newer version", `{"v":2,"role":"proxy"}`, ErrMetaVersion},
		// A future format may change field types; it must fail on the version.
		{"newer version with new types", `{"v":2,"role":{"kind":"backend"},"w":"heavy"}`, ErrMetaVersion},
		{"version not a number", `{"v":"1","role":"proxy"}`, ErrInvalidMeta},
		{"not json", `role=proxy`, ErrInvalidMeta},
		{"json array", `[1]`, ErrInvalidMeta},
		{"trailing garbage", `{"v":1,"role":"proxy"}x`, ErrInvalidMeta},
		{"wrong type", `{"v":1,"role":"proxy","w":"1"}`, ErrInvalidMeta},
		{"fractional weight", `{"v":1,"role":"proxy","w":1.5}`, ErrInvalidMeta},
		{"no role", `{"v":1}`, ErrInvalidMeta},
		{"backend without addr", `{"v":1,"role":"backend"}`, ErrInvalidMeta},
		{"bad addr", `{"v":1,"role":"backend","addr":"nowhere"}`, ErrInvalidMeta},
		{"weight out of range", `{"v":1,"role":"backend","addr":"a:1","w":100000}`, ErrInvalidMeta},
		{"oversize", `{"v":1,"role":"proxy","ver":"` + strings.Repeat("x", MaxMetaSize) + `"}`, ErrInvalidMeta},
	}
	for _, tt := range tests {
		var m Meta
		err := m.UnmarshalBinary([]byte(tt.in))
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: UnmarshalBinary = %v, want %v", tt.name, err, tt.want)
		}
		if m != (Meta{}) {
			t.Errorf("%s: failed decode changed the Meta to %+v", tt.name, m)
		}
	}
}

func TestMetaDecodeLenient(t *testing.T) {
	t.Parallel()
	// Same format, a field this build does not know and a role it does not
	// know: accepted, so that additive changes need no format bump.
	var m Meta
	if err := m.UnmarshalBinary([]byte(`{"v":1,"role":"router","zone":"eu-1"}`)); err != nil {
		t.Fatal(err)
	}
	if m.Role != "router" {
		t.Fatalf("role = %q", m.Role)
	}
	if bs, _ := admit([]Member{{Name: "r", Meta: m}}, nil); len(bs) != 0 {
		t.Fatalf("unknown role treated as a backend")
	}
}

func FuzzMetaUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"role":"backend","addr":"127.0.0.1:1","w":2,"drain":true,"ok":true,"pv":3,"ver":"x"}`,
		`{"v":2}`, `{"v":null}`, `{"v":1e400}`, `{}`, `null`, ``, "\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Meta
		if err := m.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrMetaVersion) && !errors.Is(err, ErrInvalidMeta) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if err := m.checkFields(); err != nil {
			t.Fatalf("decoded %+v out of bounds: %v", m, err)
		}
		// Admission takes whatever decodes without panicking.
		for _, ip := range []string{"127.0.0.1", "::1", "10.0.0.5"} {
			mem := Member{Name: "fuzz", Meta: m, gossipIP: netip.MustParseAddr(ip)}
			admit([]Member{mem, mem}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
		}
		// Whatever decodes re-encodes within the limit when its role is known.
		if m.Role == RoleBackend || m.Role == RoleProxy {
			if _, err := m.MarshalBinary(); err != nil && !strings.Contains(err.Error(), "encodes to") {
				t.Fatalf("decoded %+v but cannot re-encode: %v", m, err)
			}
		}
	})
}
