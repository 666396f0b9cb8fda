package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pullComplete is "" when the manifest ref of repo and every blob it names can be
// fetched, else what is missing.
func pullComplete(h *hub, repo, ref string) string {
	r := h.do("GET", "/v2/"+repo+"/manifests/"+ref, nil, nil)
	if r.status != http.StatusOK {
		return fmt.Sprintf("manifest %s:%s: %d", repo, ref, r.status)
	}
	var m refs
	if err := jsonUnmarshal(r.body, &m); err != nil {
		return err.Error()
	}
	descs := m.Layers
	if m.Config != nil {
		descs = append(descs, *m.Config)
	}
	for _, d := range descs {
		if b := h.do("GET", "/v2/"+repo+"/blobs/"+d.Digest.String(), nil, nil); b.status != http.StatusOK {
			return fmt.Sprintf("blob %s of %s:%s: %d %s", d.Digest, repo, ref, b.status, b.code())
		}
	}
	return ""
}

// TestGCReleasedWritesSeeDeletions: manifest PUTs that waited for a collection and name
// blobs it deleted (blobs the hub had validated before, so its descriptor cache lists
// them) are refused, or stored complete; none is acknowledged and lost.
func TestGCReleasedWritesSeeDeletions(t *testing.T) {
	dir := t.TempDir()
	_, ts := newTestServer(t, Config{RootDirectory: dir})
	h := &hub{t: t, url: ts.URL}
	ctx := context.Background()
	const n = 24
	bodies := make([][]byte, n)
	for i := range bodies {
		repo := fmt.Sprintf("race/r%d", i)
		_, b := h.image(repo, 1)
		bodies[i] = b
		// validated (and cached) by a manifest that is deleted again: its blobs are garbage
		require.Equal(t, http.StatusCreated, h.putManifest(repo, "v1", b, v1.MediaTypeImageManifest).status)
		r := h.do("GET", "/v2/"+repo+"/manifests/v1", nil, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, http.StatusAccepted, h.do("DELETE", "/v2/"+repo+"/manifests/"+r.header.Get("Docker-Content-Digest"), nil, nil).status)
	}

	// a collection from another process, with the PUTs waiting at its fence
	lock, err := lockForGC(ctx, dir)
	require.NoError(t, err)
	d := &syncingDriver{StorageDriver: filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 100}), root: dir}
	res, err := collect(ctx, d, GCOptions{})
	require.NoError(t, err)
	require.Len(t, res.DeletedBlobs, 2*n+1) // layers, manifests, the shared config
	status := make([]int, n)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status[i] = h.putManifest(fmt.Sprintf("race/r%d", i), "v2", bodies[i], v1.MediaTypeImageManifest).status
		}()
	}
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, lock.unlock(dir, true))
	wg.Wait()

	acked, lost := 0, 0
	for i, st := range status {
		if st != http.StatusCreated {
			assert.Equal(t, http.StatusBadRequest, st)
			continue
		}
		acked++
		if miss := pullComplete(h, fmt.Sprintf("race/r%d", i), "v2"); miss != "" {
			lost++
			t.Log("acknowledged and lost:", miss)
		}
	}
	t.Logf("%d manifest PUTs released by a collection: %d acknowledged, %d lost", n, acked, lost)
	assert.Zero(t, lost)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestManifestPutChecksStorage: a blob that leaves the storage without the hub's blob
// descriptor cache being told (a collector that announces nothing, as stock
// distribution's) is unknown to a manifest PUT: refused, not acknowledged and lost.
func TestManifestPutChecksStorage(t *testing.T) {
	dir := t.TempDir()
	_, ts := newTestServer(t, Config{RootDirectory: dir})
	h := &hub{t: t, url: ts.URL}
	m, b := h.image("direct", 1)
	require.Equal(t, http.StatusCreated, h.putManifest("direct", "v1", b, v1.MediaTypeImageManifest).status)
	require.Equal(t, http.StatusOK, h.do("HEAD", "/v2/direct/blobs/"+m.Layers[0].Digest.String(), nil, nil).status)
	require.NoError(t, os.RemoveAll(filepath.Dir(filepath.Join(dir, filepath.FromSlash(blobData(m.Layers[0].Digest))))))

	r := h.putManifest("direct", "v2", b, v1.MediaTypeImageManifest)
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "MANIFEST_BLOB_UNKNOWN", r.code())
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/direct/manifests/v2", nil, nil).status)
}
