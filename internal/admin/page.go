package admin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

// The status page: static HTML, CSS and JS that poll the JSON API. The
// files hold no data, so they are served without the token; the API calls
// they make carry it.
//
//go:embed ui
var uiFiles embed.FS

// contentSecurityPolicy lets the page load its own script, style, icon and
// API answers and nothing else: no inline code, no other origin, no frames.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// securityHeaders sets the headers every admin answer carries: the strict
// policy above, no MIME sniffing, no framing, and no Referer (the page's URL
// may carry ?token= until its script drops it).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// pageFile is one embedded file, ready to serve.
type pageFile struct {
	name        string
	contentType string
	etag        string
	body        []byte
}

// pageFiles loads the embedded files once; a file the build embeds but
// cannot read is a broken build, hence the panic.
func pageFiles() map[string]pageFile {
	out := map[string]pageFile{}
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		name := path.Base(p)
		out[name] = pageFile{name: name, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, body: body}
		return nil
	})
	if err != nil {
		panic("admin: embedded status page: " + err.Error())
	}
	return out
}

// routePage mounts the status page at GET / and its files under GET /ui/.
func (s *Server) routePage() {
	files := pageFiles()
	s.mux.Handle("GET /{$}", servePageFile(files["index.html"]))
	s.mux.HandleFunc("GET /ui/{file}", func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.PathValue("file")]
		if !ok || f.name == "index.html" {
			writeError(w, http.StatusNotFound, "no such file")
			return
		}
		servePageFile(f).ServeHTTP(w, r)
	})
}

// servePageFile answers f, revalidated on every load (no-cache with an
// ETag), so an upgraded proxy serves its new page at once.
func servePageFile(f pageFile) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", f.contentType)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", f.etag)
		http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
	})
}
