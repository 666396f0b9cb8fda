package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/opencontainers/go-digest"
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

// stressClient is a plain HTTP registry client that reports errors instead of failing
// the test (it runs on many goroutines).
type stressClient struct {
	base string
	c    *http.Client
}

func (c stressClient) do(method, u string, hdr map[string]string, body []byte) (int, http.Header, []byte, error) {
	if strings.HasPrefix(u, "/") {
		u = c.base + u
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b, err
}

// upload pushes b to repo as docker and containerd do for layers: a session, a chunk, a
// closing PUT (distribution's path, which records the blob in its descriptor cache).
func (c stressClient) upload(repo string, b []byte) error {
	st, hd, body, err := c.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if err != nil || st != http.StatusAccepted {
		return fmt.Errorf("POST upload: %d %s %v", st, body, err)
	}
	st, hd, body, err = c.do("PATCH", hd.Get("Location"), map[string]string{"Content-Type": "application/octet-stream"}, b)
	if err != nil || st != http.StatusAccepted {
		return fmt.Errorf("PATCH upload: %d %s %v", st, body, err)
	}
	loc := hd.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	st, _, body, err = c.do("PUT", loc+sep+"digest="+digest.FromBytes(b).String(), nil, nil)
	if err != nil || st != http.StatusCreated {
		return fmt.Errorf("PUT upload: %d %s %v", st, body, err)
	}
	return nil
}

var errGaveUp = errors.New("manifest refused 5 times: a collection took its blobs each time")

// errorCode is the first error code of a registry error body.
func errorCode(body []byte) string { return resp{body: body}.code() }

// TestGCStress: pushes that re-use blobs left unreferenced by earlier pushes (old enough
// for the collection to take them), each checking with HEAD what to upload as clients
// do, while collections of the same directory run every 100 ms. A push whose manifest is
// refused (a collection took a blob between its HEAD and its PUT) uploads the missing
// blobs and tries again, up to 5 times, then gives up: a clean failure. Every manifest
// acknowledged must pull complete; no push may fail otherwise.
//
// With the default keep window the unreferenced blobs are made old by hand and a blob
// uploaded again is young, so every push completes. With no keep window a collection may
// take a push's blobs every time: pushes give up, and none is acknowledged and lost.
func TestGCStress(t *testing.T) {
	pushes := 1000
	if testing.Short() {
		pushes = 200
	}
	t.Run("keep-recent=10m", func(t *testing.T) {
		done, gaveUp := testGCStress(t, pushes, 10*time.Minute)
		assert.Equal(t, pushes, done+gaveUp)
		assert.Zero(t, gaveUp, "with a keep window every push completes")
	})
	t.Run("keep-recent=0", func(t *testing.T) {
		done, _ := testGCStress(t, 200, 0)
		assert.Greater(t, done, 200/2, "most pushes complete between collections")
	})
}

// testGCStress runs pushes with collections that keep blobs younger than keep; it
// returns how many pushes were acknowledged and how many gave up.
func testGCStress(t *testing.T, pushes int, keep time.Duration) (int, int) {
	dir := t.TempDir()
	srv, ts := newTestServer(t, Config{RootDirectory: dir})
	c := stressClient{base: ts.URL, c: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	const workers, repos = 8, 8
	// orphans[i] is uploaded by push i and named by pushes i+repos and i+2*repos (same
	// repository): by then a collection may have taken it
	orphans := make([][]byte, pushes)
	for i := range orphans {
		orphans[i] = randomBytes(200 + i%64)
	}
	type acked struct{ repo, tag string }
	var (
		mu                         sync.Mutex
		done                       []acked
		refusals, gaveUp, failures int
		next                       atomic.Int64
	)
	start := time.Now()
	stop := make(chan struct{})
	gcDone := make(chan struct{})
	var gcRuns, gcDeleted int
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond): // after each collection: writes get their turn
			}
			var res GCResult
			var err error
			if gcRuns%4 == 3 { // the hub's own collection too
				res, err = srv.CollectGarbage(context.Background(), GCOptions{KeepRecent: keep})
			} else {
				res, err = CollectGarbage(context.Background(), dir, GCOptions{KeepRecent: keep})
			}
			if err != nil {
				t.Error(err)
				return
			}
			gcRuns++
			gcDeleted += len(res.DeletedBlobs)
		}
	}()

	push := func(i int) error {
		repo := fmt.Sprintf("stress/r%d", i%repos)
		if err := c.upload(repo, orphans[i]); err != nil {
			return err
		}
		if keep > 0 { // left unreferenced long ago
			e := digest.FromBytes(orphans[i]).Encoded()
			old := time.Now().Add(-2 * keep)
			_ = os.Chtimes(filepath.Join(dir, "docker/registry/v2/blobs/sha256", e[:2], e, "data"), old, old)
		}
		var layers [][]byte
		for _, j := range []int{i - repos, i - 2*repos} {
			if j >= 0 {
				layers = append(layers, orphans[j])
			}
		}
		cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","push":%d}`, i))
		m := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
			Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}}
		m.SchemaVersion = 2
		for _, l := range layers {
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(l), Size: int64(len(l))})
		}
		mb, _ := json.Marshal(m)
		tag := fmt.Sprintf("p%d", i)
		for attempt := 0; attempt < 5; attempt++ {
			for _, b := range append([][]byte{cfg}, layers...) {
				st, _, _, err := c.do("HEAD", "/v2/"+repo+"/blobs/"+digest.FromBytes(b).String(), nil, nil)
				if err != nil {
					return err
				}
				if st == http.StatusNotFound {
					if err := c.upload(repo, b); err != nil {
						return err
					}
				}
			}
			if i%3 == 0 { // a slower client: more collections fall between HEAD and PUT
				time.Sleep(time.Duration(i%7) * time.Millisecond)
			}
			st, _, body, err := c.do("PUT", "/v2/"+repo+"/manifests/"+tag, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, mb)
			if err != nil {
				return err
			}
			switch {
			case st == http.StatusCreated:
				mu.Lock()
				done = append(done, acked{repo, tag})
				mu.Unlock()
				return nil
			case st == http.StatusBadRequest && errorCode(body) == "MANIFEST_BLOB_UNKNOWN":
				mu.Lock()
				refusals++
				mu.Unlock()
			default:
				return fmt.Errorf("PUT manifest %s:%s: %d %s", repo, tag, st, body)
			}
		}
		return errGaveUp
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= pushes {
					return
				}
				err := push(i)
				mu.Lock()
				switch {
				case err == errGaveUp:
					gaveUp++
				case err != nil:
					failures++
					t.Log(err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-gcDone
	pushTime := time.Since(start)

	// every acknowledged manifest pulls complete, and so after one more collection
	_, err := CollectGarbage(context.Background(), dir, GCOptions{})
	require.NoError(t, err)
	h := &hub{t: t, url: ts.URL}
	lost := 0
	for _, a := range done {
		if miss := pullComplete(h, a.repo, a.tag); miss != "" {
			lost++
			t.Log("acknowledged and lost:", miss)
		}
	}
	t.Logf("%d pushes, %d acknowledged, %d lost; %d manifests refused and retried, %d pushes given up after 5 refusals, %d failed otherwise; %d collections deleted %d blobs; %s",
		pushes, len(done), lost, refusals, gaveUp, failures, gcRuns, gcDeleted, pushTime.Round(time.Millisecond))
	assert.Zero(t, lost, "acknowledged and lost")
	assert.Zero(t, failures, "pushes that failed other than by a clean refusal")
	assert.Greater(t, gcDeleted, 0, "the collections deleted nothing: the test tests nothing")
	return len(done), gaveUp
}
