package save

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cluster-image/sealos/builder/detect"
	"github.com/cluster-image/sealos/registry/server"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/testtool"
)

// hub starts a registry/server hub on dir, wrapped by wrap if not nil, and returns its host.
func hub(t *testing.T, dir string, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	srv, err := server.New(server.Config{RootDirectory: dir, LogLevel: "fatal"})
	require.NoError(t, err)
	var h http.Handler = srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return strings.TrimPrefix(ts.URL, "http://")
}

func push(t *testing.T, ref string, img v1.Image) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	require.NoError(t, remote.Write(r, img))
	d, err := img.Digest()
	require.NoError(t, err)
	return d
}

func randomImage(t *testing.T, size, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(size, layers)
	require.NoError(t, err)
	return img
}

// rawIndex is an index manifest pushed as written.
type rawIndex []byte

func (r rawIndex) RawManifest() ([]byte, error)        { return r, nil }
func (r rawIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }

// multiArch pushes to ref an OCI index of an amd64 and an arm64 image plus an
// attestation-like entry, and returns the index digest and the child digests by arch.
func multiArch(t *testing.T, ref string) (v1.Hash, map[string]v1.Hash) {
	t.Helper()
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	children := map[string]v1.Hash{}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}, {OS: "unknown", Architecture: "unknown"}} {
		img := mutate.ConfigMediaType(mutate.MediaType(randomImage(t, 2048, 2), types.OCIManifestSchema1), types.OCIConfigJSON)
		d, err := img.Digest()
		require.NoError(t, err)
		require.NoError(t, remote.Write(r.Context().Digest(d.String()), img))
		size, err := img.Size()
		require.NoError(t, err)
		children[p.Architecture] = d
		idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: d, Size: size, Platform: &p})
	}
	raw, err := json.Marshal(idx)
	require.NoError(t, err)
	require.NoError(t, remote.Put(r, rawIndex(raw)))
	d, _, err := v1.SHA256(strings.NewReader(string(raw)))
	require.NoError(t, err)
	return d, children
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(c), 0o644))
	}
}

// skopeoCopy pulls ref from a plain-HTTP hub with skopeo (into a dir: destination, which
// keeps manifests and blobs as they are) and returns the digest of the manifest skopeo
// stored; skopeo verifies every blob it copies.
func skopeoCopy(t *testing.T, ref string, all bool) v1.Hash {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		testtool.Missing(t, "skopeo is not installed (apt-get install skopeo)")
	}
	out := t.TempDir()
	args := []string{"--insecure-policy", "copy", "--src-tls-verify=false", "--preserve-digests", "--override-os", "linux", "--override-arch", "amd64"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, "docker://"+ref, "dir:"+out)
	cmd := exec.Command("skopeo", args...)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "skopeo %s: %s", strings.Join(args, " "), b)
	data, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	require.NoError(t, err)
	h, _, err := v1.SHA256(strings.NewReader(string(data)))
	require.NoError(t, err)
	return h
}

// skopeoRaw returns the digest of the raw manifest skopeo reads for ref.
func skopeoRaw(t *testing.T, ref string) v1.Hash {
	t.Helper()
	b, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+ref).Output()
	require.NoError(t, err, "skopeo inspect %s", ref)
	h, _, err := v1.SHA256(strings.NewReader(string(b)))
	require.NoError(t, err)
	return h
}

func TestSaveContext(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		testtool.Missing(t, "skopeo is not installed (apt-get install skopeo)")
	}
	ctx := context.Background()
	up := hub(t, t.TempDir(), nil)

	web := push(t, up+"/app/web:2.0", randomImage(t, 4096, 2))
	db := push(t, up+"/app/db:16", randomImage(t, 4096, 1))
	push(t, up+"/app/cache:7", randomImage(t, 1024, 1)) // only behind a disabled subchart
	job := push(t, up+"/tools/job:v1", randomImage(t, 1024, 3))
	pinned := push(t, up+"/tools/pinned:v1", randomImage(t, 1024, 1))
	tagged := push(t, up+"/tools/both:v3", randomImage(t, 1024, 1))
	idxDigest, children := multiArch(t, up+"/multi/arch:v1")
	kinds := map[string]v1.Hash{}
	for _, k := range []string{"pod-init", "pod", "pod-debug", "rs", "job", "ds", "crd"} {
		kinds[k] = push(t, up+"/kinds/"+k+":v1", randomImage(t, 512, 1))
	}

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"charts/app/Chart.yaml":  "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: db\n  version: 1.0.0\n  condition: db.enabled\n- name: cache\n  version: 1.0.0\n  condition: cache.enabled\n",
		"charts/app/values.yaml": fmt.Sprintf("image: %s/app/web:1.0\ndb: {enabled: true}\ncache: {enabled: true}\n", up),
		"charts/app/templates/d.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers: [{name: web, image: "{{ .Values.image }}"}]
`,
		"charts/app/charts/db/Chart.yaml":  "apiVersion: v2\nname: db\nversion: 1.0.0\n",
		"charts/app/charts/db/values.yaml": fmt.Sprintf("image: %s/app/db:16\n", up),
		"charts/app/charts/db/templates/s.yaml": `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  template:
    spec:
      containers: [{name: db, image: "{{ .Values.image }}"}]
`,
		"charts/app/charts/cache/Chart.yaml": "apiVersion: v2\nname: cache\nversion: 1.0.0\n",
		"charts/app/charts/cache/templates/d.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: cache}
spec:
  template:
    spec:
      containers: [{name: c, image: "%s/app/cache:7"}]
`, up),
		"charts/app.values.yaml": fmt.Sprintf("image: %s/app/web:2.0\ncache: {enabled: false}\n", up),
		"manifests/job.yaml": fmt.Sprintf(`apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: c, image: "%s/tools/job:v1"}]
`, up),
		"manifests/kinds.yaml": fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers: [{name: i, image: "%[1]s/kinds/pod-init:v1"}]
  containers: [{name: c, image: "%[1]s/kinds/pod:v1"}]
  ephemeralContainers: [{name: e, image: "%[1]s/kinds/pod-debug:v1"}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec: {template: {spec: {containers: [{name: c, image: "%[1]s/kinds/rs:v1"}]}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec: {template: {spec: {containers: [{name: c, image: "%[1]s/kinds/job:v1"}]}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec: {template: {spec: {containers: [{name: c, image: "%[1]s/kinds/ds:v1"}]}}}
---
apiVersion: example.com/v1
kind: Operand
metadata: {name: o}
spec: {workers: [{image: "%[1]s/kinds/crd:v1"}]}
`, up),
		"images/shim/list": fmt.Sprintf("# pinned\n%s/tools/pinned@%s\n%s/tools/both:v3@%s\n\n%s/multi/arch:v1\n", up, pinned, up, tagged, up),
	})

	imgs, err := detect.Detect(ctx, dir, detect.Options{})
	require.NoError(t, err)
	var refs []string
	for _, i := range imgs {
		refs = append(refs, i.Ref)
	}
	assert.ElementsMatch(t, []string{
		up + "/app/web:2.0", up + "/app/db:16", up + "/tools/job:v1", up + "/tools/pinned@" + pinned.String(),
		up + "/tools/both:v3@" + tagged.String(), up + "/multi/arch:v1",
		up + "/kinds/pod-init:v1", up + "/kinds/pod:v1", up + "/kinds/pod-debug:v1", up + "/kinds/rs:v1",
		up + "/kinds/job:v1", up + "/kinds/ds:v1", up + "/kinds/crd:v1",
	}, refs)

	cache := t.TempDir()
	regDir := filepath.Join(dir, "registry")
	amd64 := []v1.Platform{{OS: "linux", Architecture: "amd64"}}
	res, err := Save(ctx, imgs, Options{RegistryDir: regDir, CacheDir: cache, Platforms: amd64})
	require.NoError(t, err)
	require.Len(t, res.Images, 13)
	assert.Greater(t, res.Fetched, int64(0))

	// The saved directory, served by the hub, gives skopeo every image with its digest.
	saved := hub(t, regDir, nil)
	for _, c := range []struct {
		ref  string
		want v1.Hash
	}{
		{saved + "/app/web:2.0", web},
		{saved + "/app/db:16", db},
		{saved + "/tools/job:v1", job},
		{saved + "/tools/pinned@" + pinned.String(), pinned},
		{saved + "/tools/both:v3", tagged},
		{saved + "/multi/arch@" + children["amd64"].String(), children["amd64"]},
	} {
		assert.Equal(t, c.want, skopeoCopy(t, c.ref, false), c.ref)
	}
	for k, d := range kinds {
		assert.Equal(t, d, skopeoCopy(t, saved+"/kinds/"+k+":v1", false), k)
	}
	// The index is kept byte for byte; only the host platform's image is in it.
	assert.Equal(t, idxDigest, skopeoRaw(t, saved+"/multi/arch:v1"))
	assert.Equal(t, children["amd64"], skopeoCopy(t, saved+"/multi/arch:v1", false))
	l := Layout{Root: regDir}
	assert.False(t, l.HasBlob(children["arm64"], -1), "arm64 image saved without --all")
	_, ok := l.TagDigest("app/cache", "7")
	assert.False(t, ok, "image of a disabled subchart saved")
	// Repositories lose their registry host.
	_, err = os.Stat(filepath.Join(regDir, "docker/registry/v2/repositories/app/web/_manifests/tags/2.0/current/link"))
	require.NoError(t, err)

	// Nothing changed: nothing fetched.
	res, err = Save(ctx, imgs, Options{RegistryDir: regDir, CacheDir: cache, Platforms: amd64})
	require.NoError(t, err)
	assert.Equal(t, int64(0), res.Fetched)

	// Another build sharing the cache fetches no blob again.
	other := filepath.Join(t.TempDir(), "registry")
	res, err = Save(ctx, imgs, Options{RegistryDir: other, CacheDir: cache, Platforms: amd64})
	require.NoError(t, err)
	assert.Equal(t, int64(0), res.Fetched)
	assert.Equal(t, web, skopeoCopy(t, hub(t, other, nil)+"/app/web:2.0", false))
}

func TestSaveAllPlatforms(t *testing.T) {
	ctx := context.Background()
	up := hub(t, t.TempDir(), nil)
	idxDigest, children := multiArch(t, up+"/multi/arch:v1")
	imgs := []detect.Image{{Ref: up + "/multi/arch:v1", Sources: []detect.Source{{File: "images/shim/x", Reason: "image list, line 1"}}}}

	reg := t.TempDir()
	_, err := Save(ctx, imgs, Options{RegistryDir: reg, CacheDir: t.TempDir(), All: true})
	require.NoError(t, err)
	l := Layout{Root: reg}
	for arch, d := range children {
		assert.True(t, l.HasBlob(d, -1), arch)
	}
	assert.Equal(t, idxDigest, skopeoCopy(t, hub(t, reg, nil)+"/multi/arch:v1", true))

	// Only arm64.
	reg = t.TempDir()
	_, err = Save(ctx, imgs, Options{RegistryDir: reg, CacheDir: t.TempDir(), Platforms: []v1.Platform{{OS: "linux", Architecture: "arm64"}}})
	require.NoError(t, err)
	l = Layout{Root: reg}
	assert.True(t, l.HasBlob(children["arm64"], -1))
	assert.False(t, l.HasBlob(children["amd64"], -1))

	// A platform the index lacks is an error naming the image and file.
	_, err = Save(ctx, imgs, Options{RegistryDir: t.TempDir(), CacheDir: t.TempDir(), Platforms: []v1.Platform{{OS: "linux", Architecture: "s390x"}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), up+"/multi/arch:v1")
	assert.Contains(t, err.Error(), "images/shim/x")
	assert.Contains(t, err.Error(), "linux/s390x")
}

func TestSaveUnreachable(t *testing.T) {
	ctx := context.Background()
	up := hub(t, t.TempDir(), nil)
	push(t, up+"/ok/img:v1", randomImage(t, 512, 1))
	// A port nothing listens on.
	ts := httptest.NewServer(http.NotFoundHandler())
	dead := strings.TrimPrefix(ts.URL, "http://")
	ts.Close()

	imgs := []detect.Image{
		{Ref: up + "/ok/img:v1", Sources: []detect.Source{{File: "images/shim/a", Reason: "image list, line 1"}}},
		{Ref: up + "/missing/img:v1", Sources: []detect.Source{{File: "manifests/m.yaml", Reason: "Pod/p container c"}}},
		{Ref: dead + "/gone/img:v1", Sources: []detect.Source{{File: "charts/app", Reason: "template app/templates/d.yaml: Deployment/d container c"}}},
	}
	reg := t.TempDir()
	res, err := Save(ctx, imgs, Options{RegistryDir: reg, CacheDir: t.TempDir()})
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, "save image "+up+"/missing/img:v1 named in manifests/m.yaml (Pod/p container c)")
	assert.Contains(t, msg, "save image "+dead+"/gone/img:v1 named in charts/app")
	assert.NotContains(t, msg, "ok/img")
	var ie *ImageError
	require.True(t, errors.As(err, &ie))
	// The reachable image is still saved.
	require.Len(t, res.Images, 1)
	_, ok := Layout{Root: reg}.TagDigest("ok/img", "v1")
	assert.True(t, ok)
}

func TestSaveCollision(t *testing.T) {
	imgs := []detect.Image{
		{Ref: "a.example.com/x/y:1", Sources: []detect.Source{{File: "images/shim/a"}}},
		{Ref: "b.example.com/x/y:1", Sources: []detect.Source{{File: "images/shim/b"}}},
	}
	_, err := Save(context.Background(), imgs, Options{RegistryDir: t.TempDir(), CacheDir: t.TempDir()})
	var ce *CollisionError
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.Equal(t, "x/y:1", ce.Path)
	assert.Contains(t, err.Error(), "would both be saved as x/y:1")
	assert.Contains(t, err.Error(), "images/shim/a")
	assert.Contains(t, err.Error(), "images/shim/b")
}

// recorder records the Range headers of blob GETs of one digest.
type recorder struct {
	digest string
	mu     sync.Mutex
	ranges []string
}

func (c *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+c.digest) {
			c.mu.Lock()
			c.ranges = append(c.ranges, r.Header.Get("Range"))
			c.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// cutTransport interrupts the first download of one blob once limit bytes have been read,
// cancelling the save, as a killed process or a dropped connection would.
type cutTransport struct {
	base   http.RoundTripper
	digest string
	limit  int64
	cancel func()
	cuts   atomic.Int32
}

func (c *cutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+c.digest) && c.cuts.Add(1) == 1 {
		resp.Body = &cutBody{ReadCloser: resp.Body, left: c.limit, cancel: c.cancel}
	}
	return resp, err
}

type cutBody struct {
	io.ReadCloser
	left   int64
	cancel func()
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		if b.cancel == nil {
			return 0, io.ErrUnexpectedEOF // the connection broke
		}
		b.cancel()
		return 0, context.Canceled
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

func TestSaveResume(t *testing.T) {
	big := randomImage(t, 4<<20, 1)
	layers, err := big.Layers()
	require.NoError(t, err)
	ld, _ := layers[0].Digest()
	lsize, _ := layers[0].Size()

	ctx1, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &recorder{digest: ld.String()}
	up := hub(t, t.TempDir(), c.wrap)
	cut := &cutTransport{base: remote.DefaultTransport, digest: ld.String(), limit: lsize / 2, cancel: cancel}
	want := push(t, up+"/big/img:v1", big)
	small := push(t, up+"/small/img:v1", randomImage(t, 1024, 2))
	imgs := []detect.Image{{Ref: up + "/big/img:v1"}, {Ref: up + "/small/img:v1"}}

	reg, cache := t.TempDir(), t.TempDir()
	_, err = Save(ctx1, imgs, Options{RegistryDir: reg, CacheDir: cache, Jobs: 1, Transport: cut})
	require.Error(t, err, "the first save was cut")
	_, ok := Layout{Root: reg}.TagDigest("big/img", "v1")
	assert.False(t, ok, "a tag was written for an incomplete image")
	st, err := os.Stat(Cache{Dir: cache}.Path(ld) + ".partial")
	require.NoError(t, err, "partial download kept")
	assert.Equal(t, lsize/2, st.Size())

	res, err := Save(context.Background(), imgs, Options{RegistryDir: reg, CacheDir: cache})
	require.NoError(t, err)
	require.Len(t, res.Images, 2)
	assert.Less(t, res.Fetched, lsize, "the second save fetched the cut blob again from the start")
	c.mu.Lock()
	assert.Equal(t, fmt.Sprintf("bytes=%d-", st.Size()), c.ranges[len(c.ranges)-1])
	c.mu.Unlock()

	if _, err := exec.LookPath("skopeo"); err == nil {
		saved := hub(t, reg, nil)
		assert.Equal(t, want, skopeoCopy(t, saved+"/big/img:v1", false))
		assert.Equal(t, small, skopeoCopy(t, saved+"/small/img:v1", false))
	}
}

func TestSaveConcurrentSharedCache(t *testing.T) {
	up := hub(t, t.TempDir(), nil)
	var imgs []detect.Image
	want := map[string]v1.Hash{}
	for i := 0; i < 4; i++ {
		r := fmt.Sprintf("%s/c/img%d:v1", up, i)
		want[fmt.Sprintf("c/img%d", i)] = push(t, r, randomImage(t, 256<<10, 3))
		imgs = append(imgs, detect.Image{Ref: r})
	}
	cache := t.TempDir()
	regs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	var wg sync.WaitGroup
	errs := make([]error, len(regs))
	for i, reg := range regs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Save(context.Background(), imgs, Options{RegistryDir: reg, CacheDir: cache, Jobs: 3})
		}()
	}
	wg.Wait()
	for i, reg := range regs {
		require.NoError(t, errs[i])
		for repo, d := range want {
			got, ok := Layout{Root: reg}.TagDigest(repo, "v1")
			require.True(t, ok, repo)
			assert.Equal(t, d, got)
		}
	}
	// Every cached blob is complete and no download is left behind.
	left, err := filepath.Glob(filepath.Join(cache, "blobs/sha256/*.partial"))
	require.NoError(t, err)
	for _, p := range left {
		st, err := os.Stat(p)
		require.NoError(t, err)
		assert.Zero(t, st.Size(), p)
	}
}

func TestSaveResumesBrokenDownload(t *testing.T) {
	big := randomImage(t, 1<<20, 1)
	layers, err := big.Layers()
	require.NoError(t, err)
	ld, _ := layers[0].Digest()
	lsize, _ := layers[0].Size()
	c := &recorder{digest: ld.String()}
	up := hub(t, t.TempDir(), c.wrap)
	want := push(t, up+"/big/img:v1", big)
	cut := &cutTransport{base: remote.DefaultTransport, digest: ld.String(), limit: lsize / 3}

	reg := t.TempDir()
	res, err := Save(context.Background(), []detect.Image{{Ref: up + "/big/img:v1"}}, Options{RegistryDir: reg, CacheDir: t.TempDir(), Transport: cut})
	require.NoError(t, err)
	got, ok := Layout{Root: reg}.TagDigest("big/img", "v1")
	require.True(t, ok)
	assert.Equal(t, want, got)
	assert.True(t, Layout{Root: reg}.HasBlob(ld, lsize))
	c.mu.Lock()
	assert.Equal(t, []string{"", fmt.Sprintf("bytes=%d-", lsize/3)}, c.ranges)
	c.mu.Unlock()
	assert.Equal(t, int64(len(res.Images)), int64(1))
}

// BenchmarkSave saves 4 images of 4 x 4 MiB layers from an in-process hub into an empty
// registry directory and cache (cold), and again into the same ones (nothing changed).
func BenchmarkSave(b *testing.B) {
	srv, err := server.New(server.Config{RootDirectory: b.TempDir(), LogLevel: "fatal"})
	require.NoError(b, err)
	ts := httptest.NewServer(srv.Handler())
	defer func() { ts.Close(); srv.Close() }()
	up := strings.TrimPrefix(ts.URL, "http://")
	var imgs []detect.Image
	var total int64
	for i := 0; i < 4; i++ {
		img, err := random.Image(4<<20, 4)
		require.NoError(b, err)
		ref := fmt.Sprintf("%s/bench/img%d:v1", up, i)
		r, _ := name.ParseReference(ref)
		require.NoError(b, remote.Write(r, img))
		ls, _ := img.Layers()
		for _, l := range ls {
			n, _ := l.Size()
			total += n
		}
		imgs = append(imgs, detect.Image{Ref: ref})
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			_, err := Save(context.Background(), imgs, Options{RegistryDir: b.TempDir(), CacheDir: b.TempDir(), Logger: quiet})
			require.NoError(b, err)
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		reg, cache := b.TempDir(), b.TempDir()
		_, err := Save(context.Background(), imgs, Options{RegistryDir: reg, CacheDir: cache, Logger: quiet})
		require.NoError(b, err)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_, err := Save(context.Background(), imgs, Options{RegistryDir: reg, CacheDir: cache, Logger: quiet})
			require.NoError(b, err)
		}
	})
}
