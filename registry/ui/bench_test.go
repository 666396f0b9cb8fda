package ui_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/registry/server"
)

// inProcess carries requests straight to a handler: seeding thousands of manifests over
// loopback would time the network stack, not the hub.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	// what a server would hand its handler
	sr := r.Clone(r.Context())
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	sr.RequestURI, sr.RemoteAddr, sr.Host = r.URL.RequestURI(), "127.0.0.1:1", r.URL.Host
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, sr)
	resp := rec.Result()
	resp.Request = r // a client resolves Location against it
	return resp, nil
}

// BenchmarkPages times the pages of a hub with 1,000 repositories of 20 tags each (the
// issue's target: a repository page under 100 ms). Run it with
// go test ./registry/ui -run '^$' -bench Pages -benchtime 20x
func BenchmarkPages(b *testing.B) {
	srv, err := server.New(server.Config{RootDirectory: b.TempDir()})
	require.NoError(b, err)
	b.Cleanup(func() { srv.Close() })
	h := srv.Handler()
	opt := remote.WithTransport(inProcess{h})
	base, err := random.Image(256, 1)
	require.NoError(b, err)
	for i := range 1000 {
		repo := fmt.Sprintf("hub.test/team-%02d/app-%04d", i%20, i)
		r, err := name.ParseReference(repo+":v0", name.Insecure)
		require.NoError(b, err)
		require.NoError(b, remote.Write(r, base, opt))
		for j := 1; j < 20; j++ {
			img := mutate.Annotations(base, map[string]string{"build": fmt.Sprint(j)}).(v1.Image)
			t, _ := name.ParseReference(fmt.Sprintf("%s:v%d", repo, j), name.Insecure)
			require.NoError(b, remote.Put(t, img, opt))
		}
	}
	// The floor lines are the API calls a page cannot do without: the view costs their
	// time plus rendering (no peer registry serves pages to compare with).
	for _, p := range []struct{ name, path string }{
		{"floor: catalog API", "/v2/_catalog?n=1000"},
		{"floor: tag list API", "/v2/team-07/app-0507/tags/list"},
		{"repository list", "/ui/"},
		{"search", "/ui/api/repos?q=app-09"},
		{"repository (20 tags)", "/ui/repo/team-07/app-0507"},
		{"image", "/ui/image/team-07/app-0507/-/v7"},
	} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p.path, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", p.path, rec.Code, rec.Body.String())
				}
			}
		})
	}
}
