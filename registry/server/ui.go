package server

import (
	"context"
	"net/http"
	"path"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/cluster-image/sealos/registry/ui"
)

// isUIPath tells the web view's paths from the API's.
func isUIPath(p string) bool {
	return p == "/" || p == "/ui" || strings.HasPrefix(p, ui.Prefix)
}

// newUI builds the web view on the hub's own API: its reads go through serveAPI without a
// login (the request was checked before it reached the view) and without mirror routing
// (the view shows what the hub holds; it never makes the hub ask an upstream).
func (s *Server) newUI() (http.Handler, error) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "read only", http.StatusMethodNotAllowed)
			return
		}
		s.serveAPI(&logWriter{ResponseWriter: w, status: http.StatusOK}, r, false)
	})
	opts := ui.Options{API: api}
	if s.mirror != nil {
		opts.Mirrors = s.mirrorStatus
	}
	return ui.New(opts)
}

// mirrorStatus reports each mirrored registry and when each tag in its namespace was last
// checked upstream (the times mirror.go records under mirrorRoot).
func (s *Server) mirrorStatus() []ui.MirrorStatus {
	ctx, cancel := context.WithTimeout(s.baseCtx, 10*time.Second)
	defer cancel()
	checked := map[string][]ui.CachedTag{} // namespace -> tags
	_ = s.driver.Walk(ctx, mirrorRoot, func(fi storagedriver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		rel := strings.TrimPrefix(fi.Path(), mirrorRoot+"/")
		repo, tag := path.Dir(rel), path.Base(rel)
		ns, _, _ := strings.Cut(repo, "/")
		t := fi.ModTime()
		if b, err := s.driver.GetContent(ctx, fi.Path()); err == nil {
			if pt, err := time.Parse(time.RFC3339Nano, string(b)); err == nil {
				t = pt
			}
		}
		checked[ns] = append(checked[ns], ui.CachedTag{Repository: repo, Tag: tag, Checked: t})
		return nil
	})
	var out []ui.MirrorStatus
	for ns, reg := range s.mirror.namespaces {
		st := ui.MirrorStatus{Registry: reg, Namespace: ns, TTL: s.mirror.ttl, Tags: checked[ns]}
		if up := s.mirror.upstreams[reg]; up != nil {
			st.Upstream = up.reg.Scheme() + "://" + up.reg.RegistryStr()
			up.mu.Lock()
			st.DownUntil = up.down
			up.mu.Unlock()
		}
		out = append(out, st)
	}
	return out
}
