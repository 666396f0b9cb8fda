package client_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/registry/server"
)

// startHub runs the real hub (registry/server, filesystem storage on a temp dir) on a
// loopback listener and returns its host:port. wrap, when set, sits in front of it.
func startHub(t testing.TB, cfg server.Config, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	if cfg.RootDirectory == "" && !cfg.InMemory {
		cfg.RootDirectory = t.TempDir()
	}
	srv, err := server.New(cfg)
	require.NoError(t, err)
	h := srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return strings.TrimPrefix(ts.URL, "http://")
}

// requestLog records "METHOD path" of every request a hub sees.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *requestLog) reset() {
	l.mu.Lock()
	l.reqs = nil
	l.mu.Unlock()
}

// count returns how many requests had the method and a path containing part.
func (l *requestLog) count(method, part string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.reqs {
		if strings.HasPrefix(r, method+" ") && strings.Contains(r, part) {
			n++
		}
	}
	return n
}
