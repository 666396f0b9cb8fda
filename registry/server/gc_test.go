package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gcFixture: repo "keep" tagged v1 (kept), repo "gone" whose manifest was deleted, an
// orphan blob pushed with no manifest, an untagged manifest, and referrers.
type gcFixture struct {
	h                    *hub
	kept                 v1.Manifest
	keptDigest           digest.Digest
	gone                 v1.Manifest
	orphan               digest.Digest
	untagged             digest.Digest
	untaggedLayer        digest.Digest
	keptRef, untaggedRef digest.Digest
}

func newGCFixture(t *testing.T, h *hub) gcFixture {
	f := gcFixture{h: h}
	var kb []byte
	f.kept, kb = h.image("keep", 2)
	f.keptDigest = digest.FromBytes(kb)
	require.Equal(t, http.StatusCreated, h.putManifest("keep", "v1", kb, v1.MediaTypeImageManifest).status)

	var gb []byte
	f.gone, gb = h.image("gone", 1)
	require.Equal(t, http.StatusCreated, h.putManifest("gone", "v1", gb, v1.MediaTypeImageManifest).status)
	require.Equal(t, http.StatusAccepted, h.do("DELETE", "/v2/gone/manifests/"+digest.FromBytes(gb).String(), nil, nil).status)

	f.orphan = h.pushBlob("keep", randomBytes(777))

	um, ub := h.image("keep", 1)
	f.untagged = digest.FromBytes(ub)
	f.untaggedLayer = um.Layers[0].Digest
	require.Equal(t, http.StatusCreated, h.putManifest("keep", f.untagged.String(), ub, v1.MediaTypeImageManifest).status)

	empty := h.pushBlob("keep", []byte("{}"))
	ref := func(subject digest.Digest, size int) digest.Digest {
		m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, ArtifactType: "application/vnd.example.sig",
			Config:  v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2},
			Layers:  []v1.Descriptor{{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2}},
			Subject: &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: subject, Size: int64(size)}}
		m.SchemaVersion = 2
		b, _ := json.Marshal(m)
		require.Equal(t, http.StatusCreated, h.putManifest("keep", digest.FromBytes(b).String(), b, v1.MediaTypeImageManifest).status)
		return digest.FromBytes(b)
	}
	f.keptRef = ref(f.keptDigest, len(kb))
	f.untaggedRef = ref(f.untagged, len(ub))
	return f
}

func (f gcFixture) assertKeptPullable(t *testing.T) {
	h := f.h
	r := h.do("GET", "/v2/keep/manifests/v1", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	for _, d := range append([]v1.Descriptor{f.kept.Config}, f.kept.Layers...) {
		r := h.do("GET", "/v2/keep/blobs/"+d.Digest.String(), nil, nil)
		assert.Equal(t, http.StatusOK, r.status, d.Digest.String())
		assert.Equal(t, d.Digest, digest.FromBytes(r.body))
	}
	assert.Equal(t, http.StatusOK, h.do("GET", "/v2/keep/manifests/"+f.keptRef.String(), nil, nil).status)
	assert.Len(t, referrers(h, "keep", f.keptDigest, "").Manifests, 1)
}

func TestGC(t *testing.T) {
	dir := t.TempDir()
	_, ts := newTestServer(t, Config{RootDirectory: dir})
	h := &hub{t: t, url: ts.URL}
	f := newGCFixture(t, h)
	ctx := context.Background()
	goneLayer := f.gone.Layers[0].Digest

	// dry run: reports, deletes nothing
	var log strings.Builder
	res, err := CollectGarbage(ctx, dir, GCOptions{DryRun: true, Log: &log})
	require.NoError(t, err)
	assert.True(t, res.DryRun)
	assert.Contains(t, res.DeletedBlobs, goneLayer)
	assert.Contains(t, res.DeletedBlobs, f.orphan)
	assert.NotContains(t, res.DeletedBlobs, f.untaggedLayer)
	assert.Contains(t, log.String(), "delete blob "+goneLayer.String())
	assert.Equal(t, http.StatusOK, h.do("HEAD", "/v2/gone/blobs/"+goneLayer.String(), nil, nil).status)
	assert.Equal(t, http.StatusOK, h.do("HEAD", "/v2/keep/blobs/"+f.orphan.String(), nil, nil).status)

	// recent blobs are protected
	res, err = CollectGarbage(ctx, dir, GCOptions{KeepRecent: time.Hour})
	require.NoError(t, err)
	assert.Empty(t, res.DeletedBlobs)
	assert.Greater(t, res.KeptRecent, 1)

	// for real, against the running hub
	res, err = CollectGarbage(ctx, dir, GCOptions{})
	require.NoError(t, err)
	assert.Contains(t, res.DeletedBlobs, goneLayer)
	assert.Contains(t, res.DeletedBlobs, f.orphan)
	assert.Greater(t, res.FreedBytes, int64(777))
	assert.Empty(t, res.DeletedManifests)
	// the hub forgets deleted blobs at once (no stale cache)
	assert.Equal(t, http.StatusNotFound, h.do("HEAD", "/v2/gone/blobs/"+goneLayer.String(), nil, nil).status)
	assert.Equal(t, http.StatusNotFound, h.do("HEAD", "/v2/keep/blobs/"+f.orphan.String(), nil, nil).status)
	// nor does it accept a manifest naming a deleted blob (its descriptor cache was dropped)
	gb2, _ := json.Marshal(f.gone)
	r := h.putManifest("gone", "again", gb2, v1.MediaTypeImageManifest)
	assert.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	assert.Equal(t, "MANIFEST_BLOB_UNKNOWN", r.code())
	f.assertKeptPullable(t)
	assert.Equal(t, http.StatusOK, h.do("GET", "/v2/keep/manifests/"+f.untagged.String(), nil, nil).status)
	assert.Equal(t, http.StatusOK, h.do("GET", "/v2/keep/blobs/"+f.untaggedLayer.String(), nil, nil).status)

	// untagged manifests and their referrers go with DeleteUntagged
	res, err = CollectGarbage(ctx, dir, GCOptions{DeleteUntagged: true})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"keep@" + f.untagged.String(), "keep@" + f.untaggedRef.String()}, res.DeletedManifests)
	assert.Contains(t, res.DeletedBlobs, f.untaggedLayer)
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/keep/manifests/"+f.untagged.String(), nil, nil).status)
	assert.Empty(t, referrers(h, "keep", f.untagged, "").Manifests)
	f.assertKeptPullable(t)

	// a second run finds nothing
	res, err = CollectGarbage(ctx, dir, GCOptions{DeleteUntagged: true})
	require.NoError(t, err)
	assert.Empty(t, res.DeletedBlobs)
	assert.Empty(t, res.DeletedManifests)

	// the deleted image can be pushed again
	var gb []byte
	_, gb = h.image("gone", 1)
	require.Equal(t, http.StatusCreated, h.putManifest("gone", "v2", gb, v1.MediaTypeImageManifest).status)

	_, err = CollectGarbage(ctx, t.TempDir(), GCOptions{})
	require.ErrorContains(t, err, "not a registry storage directory")
}

func TestGCInMemory(t *testing.T) {
	srv, ts := newTestServer(t, Config{InMemory: true})
	h := &hub{t: t, url: ts.URL}
	f := newGCFixture(t, h)
	res, err := srv.CollectGarbage(context.Background(), GCOptions{DeleteUntagged: true})
	require.NoError(t, err)
	assert.Contains(t, res.DeletedBlobs, f.orphan)
	assert.Equal(t, http.StatusNotFound, h.do("HEAD", "/v2/keep/blobs/"+f.orphan.String(), nil, nil).status)
	f.assertKeptPullable(t)
}

// TestGCConcurrentPushes runs collections while clients push: every image whose push
// succeeded stays complete.
func TestGCConcurrentPushes(t *testing.T) {
	dir := t.TempDir()
	srv, ts := newTestServer(t, Config{RootDirectory: dir})
	host := strings.TrimPrefix(ts.URL, "http://")
	ctx := context.Background()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var pushed []name.Reference
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 6; i++ {
				img, err := random.Image(2048, 3)
				if !assert.NoError(t, err) {
					return
				}
				ref, _ := name.ParseReference(fmt.Sprintf("%s/c%d:v%d", host, w, i), name.Insecure)
				if !assert.NoError(t, remote.Write(ref, img)) {
					return
				}
				mu.Lock()
				pushed = append(pushed, ref)
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	runs := 0
	for stop := false; !stop; runs++ {
		select {
		case <-done:
			stop = true
		default:
		}
		var err error
		mu.Lock()
		any := len(pushed) > 0
		mu.Unlock()
		if runs%2 == 0 || !any {
			_, err = srv.CollectGarbage(ctx, GCOptions{KeepRecent: time.Hour})
		} else {
			_, err = CollectGarbage(ctx, dir, GCOptions{KeepRecent: time.Hour})
		}
		require.NoError(t, err)
	}
	t.Logf("%d collections during %d pushes", runs, len(pushed))
	require.Len(t, pushed, 12)
	for _, ref := range pushed {
		img, err := remote.Image(ref)
		require.NoError(t, err)
		layers, err := img.Layers()
		require.NoError(t, err)
		for _, l := range layers {
			rc, err := l.Compressed()
			require.NoError(t, err)
			rc.Close()
		}
		_, err = img.RawConfigFile()
		require.NoError(t, err)
	}
}

// TestGCUnderConstantWrites: a collection from outside the hub gets its turn even when
// the hub is never without a write in flight.
func TestGCUnderConstantWrites(t *testing.T) {
	dir := t.TempDir()
	_, ts := newTestServer(t, Config{RootDirectory: dir})
	h := &hub{t: t, url: ts.URL}
	h.pushBlob("busy", []byte("seed")) // the storage tree exists
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pushes sync.Map
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				b := randomBytes(64 << 10)
				if err := pushRaw(ts.URL, fmt.Sprintf("busy/w%d", w), b); err != nil {
					t.Error(err)
					return
				}
				pushes.Store(digest.FromBytes(b), w)
			}
		}()
	}
	for i := 0; i < 5; i++ {
		_, err := CollectGarbage(context.Background(), dir, GCOptions{KeepRecent: time.Hour})
		require.NoError(t, err)
	}
	close(stop)
	wg.Wait()
	// every blob pushed is there (recent blobs are kept)
	pushes.Range(func(k, v any) bool {
		d := k.(digest.Digest)
		assert.Equal(t, http.StatusOK, h.do("HEAD", fmt.Sprintf("/v2/busy/w%d/blobs/%s", v.(int), d), nil, nil).status)
		return true
	})
}

// TestGCPurgeUploads: sessions of cut pushes are purged once old enough.
func TestGCPurgeUploads(t *testing.T) {
	dir := t.TempDir()
	_, ts := newTestServer(t, Config{RootDirectory: dir})
	h := &hub{t: t, url: ts.URL}
	h.pushBlob("up", []byte("seed"))
	r := h.do("POST", "/v2/up/blobs/uploads/", nil, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	r = h.do("PATCH", h.location(r), map[string]string{"Content-Type": "application/octet-stream"}, randomBytes(1000))
	require.Equal(t, http.StatusAccepted, r.status)
	uploads := filepath.Join(dir, "docker/registry/v2/repositories/up/_uploads")
	entries, err := os.ReadDir(uploads)
	require.NoError(t, err)
	require.Len(t, entries, 1)

	res, err := CollectGarbage(context.Background(), dir, GCOptions{PurgeUploads: time.Hour, KeepRecent: time.Hour})
	require.NoError(t, err)
	assert.Zero(t, res.PurgedUploads)
	res, err = CollectGarbage(context.Background(), dir, GCOptions{PurgeUploads: time.Nanosecond, DryRun: true, KeepRecent: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, 1, res.PurgedUploads)
	entries, _ = os.ReadDir(uploads)
	assert.Len(t, entries, 1)
	res, err = CollectGarbage(context.Background(), dir, GCOptions{PurgeUploads: time.Nanosecond, KeepRecent: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, 1, res.PurgedUploads)
	entries, _ = os.ReadDir(uploads)
	assert.Empty(t, entries)
	assert.Equal(t, http.StatusOK, h.do("GET", "/v2/up/blobs/"+digest.FromBytes([]byte("seed")).String(), nil, nil).status)
}
