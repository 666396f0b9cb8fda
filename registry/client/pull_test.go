package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/registry/server"
	"github.com/cluster-image/sealos/store"
)

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir())
	require.NoError(t, err)
	return st
}

func TestPullIntoStoreAndPushBack(t *testing.T) {
	host := startHub(t, server.Config{}, nil)
	ctx := context.Background()
	img, err := random.Image(32<<10, 3)
	require.NoError(t, err)
	want, err := img.Digest()
	require.NoError(t, err)
	_, err = client.Push(ctx, img, host+"/src/app:v1")
	require.NoError(t, err)

	st := openStore(t)
	res, err := client.Pull(ctx, st, host+"/src/app:v1", false, client.PolicyAlways)
	require.NoError(t, err)
	assert.Equal(t, client.StatusPulled, res.Status)
	assert.Equal(t, want.String(), res.Digest)
	local, err := st.Image(ctx, host+"/src/app:v1")
	require.NoError(t, err)
	ld, err := local.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, ld)
	assertSameLayers(t, img, local)

	// Pulling again: the manifest is compared, nothing is written.
	res, err = client.Pull(ctx, st, host+"/src/app:v1", false, client.PolicyAlways)
	require.NoError(t, err)
	assert.Equal(t, client.StatusUpToDate, res.Status)

	// From the store to another repository: same digest there.
	desc, err := client.PushFromStore(ctx, st, host+"/src/app:v1", host+"/dst/app:v2")
	require.NoError(t, err)
	assert.Equal(t, want, desc.Digest)
	got, err := client.Image(ctx, host+"/dst/app:v2")
	require.NoError(t, err)
	assertSameLayers(t, img, got)
}

func TestPullPolicies(t *testing.T) {
	host := startHub(t, server.Config{}, nil)
	ctx := context.Background()
	img, err := random.Image(8<<10, 1)
	require.NoError(t, err)
	_, err = client.Push(ctx, img, host+"/p/app:v1")
	require.NoError(t, err)
	ref := host + "/p/app:v1"

	st := openStore(t)
	_, err = client.Pull(ctx, st, ref, false, client.PolicyNever)
	require.ErrorIs(t, err, store.ErrNotFound)

	res, err := client.Pull(ctx, st, ref, false, client.PolicyMissing)
	require.NoError(t, err)
	assert.Equal(t, client.StatusPulled, res.Status)

	// The registry changes; missing and never keep the store's copy, always updates.
	img2, err := random.Image(8<<10, 1)
	require.NoError(t, err)
	_, err = client.Push(ctx, img2, ref)
	require.NoError(t, err)
	for _, p := range []client.Policy{client.PolicyMissing, client.PolicyNever} {
		res, err = client.Pull(ctx, st, ref, false, p)
		require.NoError(t, err)
		assert.Equal(t, client.StatusPresent, res.Status, p)
	}
	res, err = client.Pull(ctx, st, ref, false, client.PolicyAlways)
	require.NoError(t, err)
	assert.Equal(t, client.StatusPulled, res.Status)
	d2, err := img2.Digest()
	require.NoError(t, err)
	assert.Equal(t, d2.String(), res.Digest)

	_, err = client.ParsePolicy("sometimes")
	require.Error(t, err)
}

func TestPullPlatformAndAll(t *testing.T) {
	host := startHub(t, server.Config{}, nil)
	ctx := context.Background()
	idx, err := random.Index(8<<10, 1, 2)
	require.NoError(t, err)
	// random.Index gives no platforms: set linux/amd64 and linux/arm64.
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	plats := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	idx = withPlatforms(t, idx, plats)
	m, err = idx.IndexManifest()
	require.NoError(t, err)
	ref := host + "/multi/app:v1"
	_, err = client.Push(ctx, idx, ref)
	require.NoError(t, err)

	st := openStore(t)
	res, err := client.Pull(ctx, st, ref, false, client.PolicyAlways, client.WithPlatform(plats[1]))
	require.NoError(t, err)
	assert.Equal(t, m.Manifests[1].Digest.String(), res.Digest, "the arm64 child")

	st2 := openStore(t)
	res, err = client.Pull(ctx, st2, ref, true, client.PolicyAlways)
	require.NoError(t, err)
	want, err := idx.Digest()
	require.NoError(t, err)
	assert.Equal(t, want.String(), res.Digest)
	local, err := st2.ImageIndex(ctx, ref)
	require.NoError(t, err)
	for _, d := range m.Manifests {
		child, err := local.Image(d.Digest)
		require.NoError(t, err)
		src, err := idx.Image(d.Digest)
		require.NoError(t, err)
		assertSameLayers(t, src, child)
	}
}

func TestPullRejectsCorruptBlobs(t *testing.T) {
	var corrupt atomic.Bool
	flipper := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if corrupt.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				body := rec.Body.Bytes()
				if len(body) > 0 {
					body[len(body)/2] ^= 0xff // same length, other content
				}
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				w.Write(body) //nolint:errcheck
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	host := startHub(t, server.Config{}, flipper)
	ctx := context.Background()
	img, err := random.Image(16<<10, 2)
	require.NoError(t, err)
	_, err = client.Push(ctx, img, host+"/bad/app:v1")
	require.NoError(t, err)

	corrupt.Store(true)
	st := openStore(t)
	_, err = client.Pull(ctx, st, host+"/bad/app:v1", false, client.PolicyAlways, client.WithRetry(0, 0))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "digest")
	_, err = st.Resolve(ctx, host+"/bad/app:v1")
	require.ErrorIs(t, err, store.ErrNotFound, "nothing named after a failed pull")
	ls, err := img.Layers()
	require.NoError(t, err)
	for _, l := range ls {
		h, err := l.Digest()
		require.NoError(t, err)
		assert.False(t, st.HasBlob(h), "no corrupt blob stored under %s", h)
	}

	// The hub recovers: the same pull goes through.
	corrupt.Store(false)
	res, err := client.Pull(ctx, st, host+"/bad/app:v1", false, client.PolicyAlways)
	require.NoError(t, err)
	assert.Equal(t, client.StatusPulled, res.Status)
}

func TestPullRetriesTransientErrors(t *testing.T) {
	var failed atomic.Int32
	flaky := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && failed.Add(1) <= 2 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	host := startHub(t, server.Config{}, flaky)
	ctx := context.Background()
	img, err := random.Image(16<<10, 2)
	require.NoError(t, err)
	_, err = client.Push(ctx, img, host+"/flaky/app:v1")
	require.NoError(t, err)
	failed.Store(0)
	res, err := client.Pull(ctx, openStore(t), host+"/flaky/app:v1", false, client.PolicyAlways, client.WithRetry(3, time.Millisecond), client.WithJobs(1))
	require.NoError(t, err)
	assert.Equal(t, client.StatusPulled, res.Status)
	assert.GreaterOrEqual(t, failed.Load(), int32(3))
}
