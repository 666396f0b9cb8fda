package server

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"
)

func newTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.RootDirectory == "" && !cfg.InMemory {
		cfg.RootDirectory = t.TempDir()
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return srv, ts
}

func TestPushPullWithGGCR(t *testing.T) {
	for _, inmem := range []bool{false, true} {
		_, ts := newTestServer(t, Config{InMemory: inmem})
		host := strings.TrimPrefix(ts.URL, "http://")
		img, err := random.Image(1024, 3)
		require.NoError(t, err)
		ref, err := name.ParseReference(host+"/a/b:v1", name.Insecure)
		require.NoError(t, err)
		require.NoError(t, remote.Write(ref, img))
		got, err := remote.Image(ref)
		require.NoError(t, err)
		d1, _ := img.Digest()
		d2, err := got.Digest()
		require.NoError(t, err)
		require.Equal(t, d1, d2)
		layers, err := got.Layers()
		require.NoError(t, err)
		for _, l := range layers {
			rc, err := l.Compressed()
			require.NoError(t, err)
			rc.Close()
		}
	}
}
