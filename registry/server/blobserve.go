package server

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// serveBlobFast serves GET and HEAD of a blob of a filesystem hub straight from its file
// (sendfile, no user-space copy), when the repository links the blob and the file
// exists. It returns false, having written nothing, in every other case, and the App
// answers (errors included) as usual.
func (s *Server) serveBlobFast(w http.ResponseWriter, r *http.Request, repo, ref string) bool {
	if s.cfg.RootDirectory == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	d, err := digest.Parse(ref)
	if err != nil || d.Algorithm() != digest.SHA256 {
		return false
	}
	link, err := os.ReadFile(filepath.Join(s.cfg.RootDirectory, filepath.FromSlash(blobLink(repo, d))))
	if err != nil || string(bytes.TrimSpace(link)) != d.String() {
		return false
	}
	f, err := os.Open(filepath.Join(s.cfg.RootDirectory, filepath.FromSlash(blobData(d))))
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	h := w.Header()
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	// ServeContent handles Range, If-None-Match and HEAD, and copies with sendfile.
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return true
}

// ReadFrom lets io.Copy reach the connection's ReadFrom (sendfile) through the wrapper.
func (w *logWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		n, err := io.Copy(writerOnly{w.ResponseWriter}, src)
		w.bytes += n
		return n, err
	}
	n, err := rf.ReadFrom(src)
	w.bytes += n
	return n, err
}

type writerOnly struct{ io.Writer }
