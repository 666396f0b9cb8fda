package client_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/registry/server"
)

func TestPushImageKeepsDigests(t *testing.T) {
	host := startHub(t, server.Config{}, nil)
	ctx := context.Background()
	img, err := random.Image(64<<10, 3)
	require.NoError(t, err)
	want, err := img.Digest()
	require.NoError(t, err)

	desc, err := client.Push(ctx, img, host+"/test/app:v1")
	require.NoError(t, err)
	assert.Equal(t, want, desc.Digest)

	got, err := client.Image(ctx, host+"/test/app:v1")
	require.NoError(t, err)
	gd, err := got.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, gd)
	assertSameLayers(t, img, got)
}

func TestPushIndexKeepsDigests(t *testing.T) {
	host := startHub(t, server.Config{}, nil)
	ctx := context.Background()
	idx, err := random.Index(16<<10, 2, 3)
	require.NoError(t, err)
	want, err := idx.Digest()
	require.NoError(t, err)

	desc, err := client.Push(ctx, idx, host+"/test/multi:v1")
	require.NoError(t, err)
	assert.Equal(t, want, desc.Digest)

	got, err := client.Index(ctx, host+"/test/multi:v1")
	require.NoError(t, err)
	gd, err := got.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, gd)
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	for _, child := range m.Manifests {
		src, err := idx.Image(child.Digest)
		require.NoError(t, err)
		dst, err := got.Image(child.Digest)
		require.NoError(t, err)
		assertSameLayers(t, src, dst)
	}
}

func assertSameLayers(t *testing.T, want, got v1.Image) {
	t.Helper()
	wl, err := want.Layers()
	require.NoError(t, err)
	gl, err := got.Layers()
	require.NoError(t, err)
	require.Len(t, gl, len(wl))
	for i := range wl {
		wd, err := wl[i].Digest()
		require.NoError(t, err)
		rc, err := gl[i].Compressed()
		require.NoError(t, err)
		h, _, err := v1.SHA256(rc) // the bytes served, not the manifest's claim
		rc.Close()
		require.NoError(t, err)
		assert.Equal(t, wd, h, "layer %d", i)
	}
}

func TestPushSkipsWhatTheTargetHas(t *testing.T) {
	var log requestLog
	host := startHub(t, server.Config{}, log.wrap)
	ctx := context.Background()
	img, err := random.Image(32<<10, 4)
	require.NoError(t, err)

	_, err = client.Push(ctx, img, host+"/test/app:v1")
	require.NoError(t, err)
	assert.Equal(t, 5, log.count(http.MethodPost, "/blobs/uploads/"), "4 layers + config uploaded")
	// Small blobs go in one request each (the spec's single POST), never in chunks.
	assert.Equal(t, 5, log.count(http.MethodPost, "digest=sha256"))
	assert.Zero(t, log.count(http.MethodPatch, "/blobs/uploads/"))
	assert.Zero(t, log.count(http.MethodPut, "/blobs/uploads/"))

	// The same image again under the same tag: one manifest HEAD, nothing sent.
	log.reset()
	_, err = client.Push(ctx, img, host+"/test/app:v1")
	require.NoError(t, err)
	assert.Zero(t, log.count(http.MethodPost, "/blobs/uploads/"))
	assert.Zero(t, log.count(http.MethodPut, "/manifests/"))

	// Under a new tag: blobs exist (HEAD), only the manifest is put.
	log.reset()
	_, err = client.Push(ctx, img, host+"/test/app:v2")
	require.NoError(t, err)
	assert.Zero(t, log.count(http.MethodPost, "/blobs/uploads/"))
	assert.Equal(t, 1, log.count(http.MethodPut, "/manifests/v2"))

	// One new layer on top: only that layer is uploaded.
	log.reset()
	img2, err := appendRandomLayer(img)
	require.NoError(t, err)
	_, err = client.Push(ctx, img2, host+"/test/app:v3")
	require.NoError(t, err)
	assert.Equal(t, 2, log.count(http.MethodPost, "/blobs/uploads/"), "the new layer and the new config")
}

func TestPushMountsAcrossRepositories(t *testing.T) {
	var log requestLog
	host := startHub(t, server.Config{}, log.wrap)
	ctx := context.Background()
	img, err := random.Image(32<<10, 3)
	require.NoError(t, err)
	_, err = client.Push(ctx, img, host+"/team/a:v1")
	require.NoError(t, err)

	src, err := name.ParseReference(host + "/team/a:v1")
	require.NoError(t, err)
	mounts := map[v1.Hash]name.Reference{}
	ls, err := img.Layers()
	require.NoError(t, err)
	for _, l := range ls {
		h, err := l.Digest()
		require.NoError(t, err)
		mounts[h] = src
	}
	log.reset()
	_, err = client.Push(ctx, img, host+"/team/b:v1", client.WithMountFrom(mounts))
	require.NoError(t, err)
	assert.Equal(t, 3, log.count(http.MethodPost, "from=team%2Fa"), "each layer mounted from team/a")
	assert.Equal(t, 1, log.count(http.MethodPost, "digest="), "only the config's data sent")
	assert.Zero(t, log.count(http.MethodPatch, "/blobs/uploads/"))

	got, err := client.Image(ctx, host+"/team/b:v1")
	require.NoError(t, err)
	assertSameLayers(t, img, got)
}

func TestPushRetriesTransientErrors(t *testing.T) {
	var failed atomic.Int32
	flaky := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The first two blob uploads are refused as if the hub were overloaded.
			if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads/") && failed.Add(1) <= 2 {
				http.Error(w, "try again", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	host := startHub(t, server.Config{}, flaky)
	img, err := random.Image(16<<10, 2)
	require.NoError(t, err)
	_, err = client.Push(context.Background(), img, host+"/test/flaky:v1", client.WithRetry(3, time.Millisecond), client.WithJobs(1))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, failed.Load(), int32(3))

	// Without retries the same failure is reported.
	failed.Store(0)
	img2, err := random.Image(16<<10, 2)
	require.NoError(t, err)
	_, err = client.Push(context.Background(), img2, host+"/test/flaky:v2", client.WithRetry(0, 0), client.WithJobs(1))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503")
}

func TestPushProgressPlainLines(t *testing.T) {
	host := startHub(t, server.Config{}, nil)
	img, err := random.Image(100<<10, 3)
	require.NoError(t, err)
	var out bytes.Buffer
	p := client.NewProgress(&out, false)
	_, err = client.Push(context.Background(), img, host+"/test/progress:v1", client.WithProgress(p))
	require.NoError(t, err)
	p.Close()
	ls, err := img.Layers()
	require.NoError(t, err)
	for _, l := range ls {
		h, err := l.Digest()
		require.NoError(t, err)
		size, err := l.Size()
		require.NoError(t, err)
		assert.Contains(t, out.String(), fmt.Sprintf("push %s: done %.1f KiB\n", h.Hex[:12], float64(size)/1024))
	}

	// Second push: every blob already there.
	out.Reset()
	p = client.NewProgress(&out, false)
	_, err = client.Push(context.Background(), img, host+"/test/progress:v2", client.WithProgress(p))
	require.NoError(t, err)
	p.Close()
	assert.Equal(t, 4, strings.Count(out.String(), ": exists"), "3 layers and the config: %s", out.String())
}

func TestPushUnknownHostFails(t *testing.T) {
	img, err := random.Image(1024, 1)
	require.NoError(t, err)
	// A loopback port nobody listens on: fails fast, with the reference in the message.
	_, err = client.Push(context.Background(), img, "127.0.0.1:1/x/y:z", client.WithRetry(0, 0))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "127.0.0.1:1/x/y:z")
}

func appendRandomLayer(img v1.Image) (v1.Image, error) {
	l, err := random.Layer(8<<10, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(img, l)
}

func TestPushLargeBlobPostThenPut(t *testing.T) {
	var log requestLog
	host := startHub(t, server.Config{}, log.wrap)
	img, err := random.Image(9<<20, 1) // above the single-POST size
	require.NoError(t, err)
	_, err = client.Push(context.Background(), img, host+"/test/big:v1")
	require.NoError(t, err)
	assert.Equal(t, 1, log.count(http.MethodPut, "/blobs/uploads/"), "the layer: POST, then one PUT with the body")
	assert.Zero(t, log.count(http.MethodPatch, "/blobs/uploads/"))
	got, err := client.Image(context.Background(), host+"/test/big:v1")
	require.NoError(t, err)
	assertSameLayers(t, img, got)
}

func TestMountSourcesFromTheStore(t *testing.T) {
	var log requestLog
	host := startHub(t, server.Config{}, log.wrap)
	ctx := context.Background()
	st := openStore(t)
	img, err := random.Image(16<<10, 3)
	require.NoError(t, err)
	require.NoError(t, st.WriteImage(ctx, host+"/team/a:v1", img))
	_, err = client.PushFromStore(ctx, st, host+"/team/a:v1", "")
	require.NoError(t, err)

	// The same image under another repository of the same registry: its layers are
	// mounted from team/a, not uploaded again.
	require.NoError(t, st.Tag(ctx, host+"/team/a:v1", host+"/team/b:v1"))
	dst, err := client.ParseReference(host + "/team/b:v1")
	require.NoError(t, err)
	mounts, err := client.MountSources(ctx, st, dst)
	require.NoError(t, err)
	assert.Len(t, mounts, 3)
	log.reset()
	_, err = client.PushFromStore(ctx, st, host+"/team/b:v1", "", client.WithMountFrom(mounts))
	require.NoError(t, err)
	assert.Equal(t, 3, log.count(http.MethodPost, "from=team%2Fa"))
	assert.Equal(t, 1, log.count(http.MethodPost, "digest="), "only the config uploaded")

	// The same, found lazily by push itself.
	require.NoError(t, st.Tag(ctx, host+"/team/a:v1", host+"/team/c:v1"))
	log.reset()
	_, err = client.PushFromStore(ctx, st, host+"/team/c:v1", "", client.WithMountFromStore(st))
	require.NoError(t, err)
	assert.Equal(t, 3, log.count(http.MethodPost, "mount="))
	assert.Zero(t, log.count(http.MethodPatch, "/blobs/uploads/"))

	// Other registries and the destination repository itself are never mount sources.
	other, err := client.ParseReference("other.example.com/team/b:v1")
	require.NoError(t, err)
	mounts, err = client.MountSources(ctx, st, other)
	require.NoError(t, err)
	assert.Empty(t, mounts)
}

func TestTLSVerify(t *testing.T) {
	srv, err := server.New(server.Config{RootDirectory: t.TempDir()})
	require.NoError(t, err)
	ts := httptest.NewTLSServer(srv.Handler()) // self-signed certificate
	t.Cleanup(func() { ts.Close(); srv.Close() })
	host := strings.TrimPrefix(ts.URL, "https://")
	img, err := random.Image(4<<10, 1)
	require.NoError(t, err)

	_, err = client.Push(context.Background(), img, host+"/tls/app:v1", client.WithRetry(0, 0))
	require.Error(t, err, "an unknown certificate is refused by default")
	assert.Contains(t, err.Error(), "certificate")

	desc, err := client.Push(context.Background(), img, host+"/tls/app:v1", client.WithTLSVerify(false))
	require.NoError(t, err)
	got, err := client.Image(context.Background(), host+"/tls/app:v1", client.WithTLSVerify(false))
	require.NoError(t, err)
	gd, err := got.Digest()
	require.NoError(t, err)
	assert.Equal(t, desc.Digest, gd)
}

func TestPushStopsWhenCancelled(t *testing.T) {
	arrived := make(chan struct{}, 16)
	stall := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads/") {
				_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client leaving
				arrived <- struct{}{}
				<-r.Context().Done() // a hub that never answers
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	host := startHub(t, server.Config{}, stall)
	img, err := random.Image(16<<10, 2)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := client.Push(ctx, img, host+"/stuck/app:v1")
		done <- err
	}()
	<-arrived // an upload is in flight
	cancel()
	err = <-done
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
}
