package main

// End-to-end tests of `sealos registry images` and `sealos registry save` with the real
// binary ($SEALOS_BIN): the upstream and the saved directory are both served by
// `sealos registry serve`, and skopeo pulls what was saved.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/builder/detect"
	"github.com/cluster-image/sealos/builder/kubefile"
	"github.com/cluster-image/sealos/builder/save"
	"github.com/cluster-image/sealos/registry/server"

	"github.com/cluster-image/sealos/internal/testtool"
)

// serveRegistryDir runs `sealos registry serve filesystem dir` on a free loopback port and
// returns host:port.
func serveRegistryDir(t *testing.T, bin, dir string, extra ...string) string {
	t.Helper()
	addr, _ := stoppableHub(t, bin, dir, extra...)
	return addr
}

func TestRegistrySaveEndToEnd(t *testing.T) {
	bin := sealosBin(t)
	if _, err := exec.LookPath("skopeo"); err != nil {
		testtool.Missing(t, "skopeo is not installed (apt-get install skopeo)")
	}
	up := serveRegistryDir(t, bin, t.TempDir())
	want := map[string]v1.Hash{}
	for _, r := range []string{"app/web:1.0", "app/db:16", "tools/list:v1"} {
		img, err := random.Image(32<<10, 2)
		require.NoError(t, err)
		ref, err := name.ParseReference(up + "/" + r)
		require.NoError(t, err)
		require.NoError(t, remote.Write(ref, img))
		want[r], _ = img.Digest()
	}

	dir := t.TempDir()
	files := map[string]string{
		"manifests/app.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers: [{name: init, image: "%[1]s/app/db:16"}]
      containers: [{name: web, image: "%[1]s/app/web:1.0"}]
`, up),
		"images/shim/list": fmt.Sprintf("# extra\n%s/tools/list:v1@%s\n", up, want["tools/list:v1"]),
	}
	for p, c := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644))
	}
	root := t.TempDir()

	// registry images: what was found and why.
	r := mustSealos(t, nil, "", "--root", root, "registry", "images", dir, "--output", "json")
	var imgs []detect.Image
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &imgs))
	require.Len(t, imgs, 3)
	assert.Equal(t, up+"/app/db:16", imgs[0].Ref)
	assert.Equal(t, []detect.Source{{File: "manifests/app.yaml", Reason: "Deployment/web init container init"}}, imgs[0].Sources)
	assert.Equal(t, up+"/tools/list:v1@"+want["tools/list:v1"].String(), imgs[2].Ref)
	r = mustSealos(t, nil, "", "--root", root, "registry", "images", dir)
	assert.Contains(t, r.stdout, "    images/shim/list: image list, line 2\n")

	// registry save, then the saved directory is served and pulled by skopeo.
	r = mustSealos(t, nil, "", "--root", root, "registry", "save", dir, "--output", "json")
	var res save.Result
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res))
	require.Len(t, res.Images, 3)
	assert.Greater(t, res.Fetched, int64(0))
	saved := serveRegistryDir(t, bin, filepath.Join(dir, "registry"))
	for ref, d := range want {
		out := t.TempDir()
		b, err := exec.Command("skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--preserve-digests",
			"docker://"+saved+"/"+ref, "dir:"+out).CombinedOutput()
		require.NoError(t, err, "skopeo copy %s: %s", ref, b)
		m, err := os.ReadFile(filepath.Join(out, "manifest.json"))
		require.NoError(t, err)
		h, _, err := v1.SHA256(strings.NewReader(string(m)))
		require.NoError(t, err)
		assert.Equal(t, d, h, ref)
	}

	// Nothing changed: nothing fetched. Another context with the same images: nothing
	// fetched either (the cache under --root is shared).
	r = mustSealos(t, nil, "", "--root", root, "registry", "save", dir, "--output", "json")
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res))
	assert.Equal(t, int64(0), res.Fetched)
	r = mustSealos(t, nil, "", "--root", root, "registry", "save", dir, "--registry-dir", filepath.Join(t.TempDir(), "r"), "--output", "json")
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res))
	assert.Equal(t, int64(0), res.Fetched)

	// An image the upstream lacks fails, naming the image and the file that named it.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "images/shim/missing"), []byte(up+"/no/such:v1\n"), 0o644))
	r = sealos(t, nil, "", "--root", root, "registry", "save", dir)
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "save image "+up+"/no/such:v1 named in images/shim/missing (image list, line 1)")

	// --images saves exactly those images.
	other := filepath.Join(t.TempDir(), "r")
	mustSealos(t, nil, "", "--root", root, "registry", "save", dir, "--registry-dir", other, "--images", up+"/app/web:1.0")
	entries, err := os.ReadDir(filepath.Join(other, "docker/registry/v2/repositories/app"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "web", entries[0].Name())
}

func TestKubefileCopiesRegistry(t *testing.T) {
	for _, tc := range []struct {
		kubefile    string
		want, named bool
	}{
		{"FROM scratch\nCOPY registry registry\n", true, true},
		{"FROM scratch\nCOPY ./registry/ /registry\n", true, true},
		{"FROM scratch\nCOPY registry/docker registry/docker\n", true, true},
		{"FROM scratch\nCOPY . .\n", true, false},
		{"FROM scratch\nCOPY * ./\n", true, false},
		{"FROM scratch\nCOPY manifests charts ./\nADD $DIR x\n", true, false},
		{"FROM scratch\nCOPY manifests manifests\nCOPY charts charts\n", false, false},
		{"FROM scratch AS a\nCOPY registry registry\nFROM scratch\nCOPY --from=a registry registry\n", true, true},
		{"FROM scratch\nCOPY --from=other registry registry\n", false, false},
		{"FROM scratch\nCOPY registry-tools bin\n", false, false},
	} {
		kf, err := kubefile.Parse("Kubefile", strings.NewReader(tc.kubefile))
		require.NoError(t, err, tc.kubefile)
		assert.Equal(t, tc.want, kubefileCopiesRegistry(kf), tc.kubefile)
		copies, named := kubefileRegistrySources(kf)
		assert.Equal(t, tc.want, copies, tc.kubefile)
		assert.Equal(t, tc.named, named, tc.kubefile)
	}
}

// TestBuildRegistryMissing: a Kubefile that copies registry/ from a context where nothing
// names an image, and which has no registry/, fails before the build, saying what is
// scanned; a manifest that is not YAML is a warning naming its line, not a failure.
func TestBuildRegistryMissing(t *testing.T) {
	sealosBin(t)
	if os.Geteuid() != 0 {
		testtool.Missing(t, "builds run on the embedded BuildKit, which needs root (CI runs as root)")
	}
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "manifests"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "manifests/web.yaml"), []byte(
		"kind: Pod\nmetadata:\n  name: a\n  name: b\nspec:\n  containers:\n  - image: {{ .Values.image }}\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Kubefile"), []byte(
		"FROM scratch\nCOPY manifests manifests\nCOPY registry registry\n"), 0o644))
	root := t.TempDir()
	r := sealos(t, nil, "", "--root", root, "build", "--progress", "quiet", "-t", "demo/none:v1", dir)
	require.Error(t, r.err, r.stderr)
	assert.Contains(t, r.stderr, "WARNING: manifests/web.yaml:7: not valid YAML")
	assert.Contains(t, r.stderr, "WARNING: manifests/web.yaml:7: image \"{{ .Values.image }}\" is an unrendered template: skipped")
	assert.Contains(t, r.stderr, "the Kubefile copies registry/, but "+dir+" has none")
	assert.Contains(t, r.stderr, "images/skopeo/tar.txt")
	assert.NotContains(t, r.stderr, "not found in the build context", "stopped before BuildKit")

	// With registry/ there, the build goes on.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "registry"), 0o755))
	mustSealos(t, nil, "", "--root", root, "build", "--progress", "quiet", "-t", "demo/none:v1", dir)
}

// TestBuildSavesImages builds a cluster image whose context names images: they are saved
// into CONTEXT/registry before the build, embedded, and listed by `sealos inspect`.
func TestBuildSavesImages(t *testing.T) {
	bin := sealosBin(t)
	if os.Geteuid() != 0 {
		testtool.Missing(t, "builds run on the embedded BuildKit, which needs root (CI runs as root)")
	}
	up := serveRegistryDir(t, bin, t.TempDir())
	img, err := random.Image(16<<10, 1)
	require.NoError(t, err)
	ref, err := name.ParseReference(up + "/demo/web:v1")
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img))

	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "manifests"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "manifests/web.yaml"), []byte(fmt.Sprintf(
		"apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: %q}]\n", up+"/demo/web:v1")), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Kubefile"), []byte(
		"FROM scratch\nCOPY manifests manifests\nCOPY registry registry\nCMD [\"kubectl apply -f manifests\"]\n"), 0o644))
	root := t.TempDir()

	r := mustSealos(t, nil, "", "--root", root, "build", "--images-only", "--output", "json", dir)
	var imgs []detect.Image
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &imgs))
	require.Len(t, imgs, 1)

	mustSealos(t, nil, "", "--root", root, "build", "--progress", "quiet", "-t", "demo/app:v1", dir)
	_, ok := save.Layout{Root: filepath.Join(dir, "registry")}.TagDigest("demo/web", "v1")
	assert.True(t, ok, "image saved into the context")
	r = mustSealos(t, nil, "", "--root", root, "inspect", "--format", `{{range .Images}}{{.}} {{end}}`, "demo/app:v1")
	assert.Equal(t, up+"/demo/web:v1", strings.TrimSpace(r.stdout))

	// --save-image=false: no annotation.
	mustSealos(t, nil, "", "--root", root, "build", "--progress", "quiet", "--save-image=false", "-t", "demo/app:v2", dir)
	r = mustSealos(t, nil, "", "--root", root, "inspect", "--format", `{{range .Images}}{{.}} {{end}}`, "demo/app:v2")
	assert.Equal(t, "", strings.TrimSpace(r.stdout))
}

// slowBlob serves the first GET of one blob slowly, so a save can be killed in the middle
// of it, and records the Range header of every GET of that blob.
type slowBlob struct {
	digest string
	mu     sync.Mutex
	ranges []string
}

type slowWriter struct{ http.ResponseWriter }

func (w slowWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), 16<<10)
		m, err := w.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		b = b[k:]
		time.Sleep(5 * time.Millisecond)
	}
	return n, nil
}

func (s *slowBlob) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+s.digest) {
			s.mu.Lock()
			s.ranges = append(s.ranges, r.Header.Get("Range"))
			first := len(s.ranges) == 1
			s.mu.Unlock()
			if first {
				h.ServeHTTP(slowWriter{w}, r)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// TestRegistrySaveKilledResumes kills `sealos registry save` (SIGKILL) in the middle of a
// blob and runs it again: the second run continues the download where it stopped and the
// result is complete and correct.
func TestRegistrySaveKilledResumes(t *testing.T) {
	bin := sealosBin(t)
	img, err := random.Image(4<<20, 1)
	require.NoError(t, err)
	layers, err := img.Layers()
	require.NoError(t, err)
	ld, _ := layers[0].Digest()
	lsize, _ := layers[0].Size()
	slow := &slowBlob{digest: ld.String()}
	srv, err := server.New(server.Config{RootDirectory: t.TempDir(), LogLevel: "fatal"})
	require.NoError(t, err)
	ts := httptest.NewServer(slow.wrap(srv.Handler()))
	t.Cleanup(func() { ts.Close(); srv.Close() })
	up := strings.TrimPrefix(ts.URL, "http://")
	ref, err := name.ParseReference(up + "/big/img:v1")
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img))
	want, _ := img.Digest()

	root, dir, reg := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "registry")
	args := []string{"--root", root, "registry", "save", dir, "--registry-dir", reg, "--images", up + "/big/img:v1"}
	cmd := exec.Command(bin, args...)
	require.NoError(t, cmd.Start())
	partial := filepath.Join(root, "cache", "blobs", "sha256", ld.Hex+".partial")
	var cut int64
	for i := 0; i < 2000 && cut == 0; i++ { // bounded wait for the download to be under way
		if st, err := os.Stat(partial); err == nil && st.Size() > 0 {
			cut = st.Size()
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Greater(t, cut, int64(0), "the download never started")
	_, ok := save.Layout{Root: reg}.TagDigest("big/img", "v1")
	require.False(t, ok, "the killed save wrote the tag")
	st, err := os.Stat(partial)
	require.NoError(t, err)
	require.Less(t, st.Size(), lsize, "the killed save finished the blob")

	mustSealos(t, nil, "", args...)
	got, ok := save.Layout{Root: reg}.TagDigest("big/img", "v1")
	require.True(t, ok)
	assert.Equal(t, want, got)
	slow.mu.Lock()
	defer slow.mu.Unlock()
	require.Len(t, slow.ranges, 2)
	assert.Regexp(t, `^bytes=[1-9][0-9]*-$`, slow.ranges[1], "the second run did not resume")
	if _, err := exec.LookPath("skopeo"); err == nil {
		saved := serveRegistryDir(t, bin, reg)
		out := t.TempDir()
		b, err := exec.Command("skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--preserve-digests", "docker://"+saved+"/big/img:v1", "dir:"+out).CombinedOutput()
		require.NoError(t, err, "%s", b)
	}
}
