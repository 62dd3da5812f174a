package admin

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// The status page and its files are served without the token (they hold no
// data; the API calls they make carry it), with their content types, an
// ETag that answers 304, and the strict security headers; the page loads
// nothing from another origin and has no inline script or style, which the
// policy would block. The API keeps wanting the token.
func TestStatusPageFiles(t *testing.T) {
	h := New(Config{Source: &fakeSource{routable: 1}, Token: "tok"}).Handler()
	get := func(path string, header ...string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, tt := range []struct{ path, contentType string }{
		{"/", "text/html"},
		{"/ui/app.js", "text/javascript"},
		{"/ui/style.css", "text/css"},
		{"/ui/favicon.svg", "image/svg+xml"},
	} {
		rec := get(tt.path)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), tt.contentType) || rec.Body.Len() == 0 {
			t.Fatalf("GET %s: %d %q, %d bytes", tt.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
		}
		etag := rec.Header().Get("ETag")
		if etag == "" || rec.Header().Get("Cache-Control") != "no-cache" {
			t.Fatalf("GET %s: ETag %q, Cache-Control %q", tt.path, etag, rec.Header().Get("Cache-Control"))
		}
		if again := get(tt.path, "If-None-Match", etag); again.Code != http.StatusNotModified {
			t.Fatalf("GET %s with its ETag: %d, want 304", tt.path, again.Code)
		}
	}
	for _, path := range []string{"/ui/", "/ui/index.html", "/ui/nothing.js", "/index.html"} {
		if rec := get(path); rec.Code != 404 {
			t.Errorf("GET %s: %d, want 404", path, rec.Code)
		}
	}
	if rec := get("/v1/summary"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("/v1/summary without the token: %d", rec.Code)
	}

	for _, path := range []string{"/", "/v1/summary", "/healthz"} {
		hdr := get(path).Header()
		for name, want := range map[string]string{
			"Content-Security-Policy": contentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := hdr.Get(name); got != want {
				t.Errorf("GET %s: %s %q, want %q", path, name, got, want)
			}
		}
	}
	for _, directive := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(contentSecurityPolicy, directive) {
			t.Errorf("policy lacks %q", directive)
		}
	}
	if strings.Contains(contentSecurityPolicy, "unsafe") || strings.Contains(contentSecurityPolicy, "*") {
		t.Errorf("policy not strict: %s", contentSecurityPolicy)
	}

	page := get("/").Body.String()
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)(src|href)="(https?:)?//`), // another origin
		regexp.MustCompile(`(?i)<script>`),                 // inline script
		regexp.MustCompile(`(?i)<style`),                   // inline style
		regexp.MustCompile(`(?i)\sstyle="`),
		regexp.MustCompile(`(?i)\son[a-z]+="`), // inline handlers
	} {
		if loc := bad.FindStringIndex(page); loc != nil {
			t.Errorf("the page has %q, which the policy blocks or which leaves the origin", page[loc[0]:loc[1]])
		}
	}
	for _, ref := range []string{`src="/ui/app.js"`, `href="/ui/style.css"`} {
		if !strings.Contains(page, ref) {
			t.Errorf("the page does not load %s", ref)
		}
	}
	if js := get("/ui/app.js").Body.String(); strings.Contains(js, "innerHTML") || strings.Contains(js, "eval(") {
		t.Error("app.js writes HTML or evaluates strings: values from the API must go in as text")
	}
}
