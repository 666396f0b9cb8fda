package main

// End-to-end tests of the hub's mirror mode with real clients: containerd's ctr and
// skopeo, configured by `sealos registry mirror-config`, pull docker.io-style names
// through a site hub (`sealos registry serve --mirror docker.io=<connected hub>`), and keep
// pulling them after the connected hub is shut down.

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/store"

	"github.com/cluster-image/sealos/internal/testtool"
)

// stoppableHub runs `sealos registry serve filesystem dir` and returns its address and a
// stop function (also run at cleanup).
func stoppableHub(t *testing.T, bin, dir string, extra ...string) (string, func()) {
	t.Helper()
	h := startServe(t, bin, append([]string{"filesystem", dir}, extra...)...)
	return h.addr, h.stop
}

// servedHub is a `sealos registry serve` process.
type servedHub struct {
	addr string
	proc *os.Process
	stop func() // SIGINT, then SIGKILL after 10 s; also run at cleanup
}

// startServe runs `sealos registry serve ARGS... --port 0 --address 127.0.0.1` and waits
// for the address it prints.
func startServe(t *testing.T, bin string, args ...string) servedHub {
	t.Helper()
	cmd := exec.Command(bin, append(append([]string{"registry", "serve"}, args...), "--port", "0", "--address", "127.0.0.1")...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	re := regexp.MustCompile(`on https?://(\S+)`)
	sc := bufio.NewScanner(stderr)
	var said []string
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go func() {
				for sc.Scan() {
				}
			}()
			return servedHub{addr: m[1], proc: cmd.Process, stop: stop}
		}
		said = append(said, sc.Text())
	}
	t.Fatalf("registry serve %v exited without printing its address:\n%s", args, strings.Join(said, "\n"))
	return servedHub{}
}

// containerd runs a private containerd (own root, state and socket; CRI off) and returns
// a function that runs ctr against it.
func startContainerd(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		testtool.Missing(t, "containerd needs root (CI runs as root)")
	}
	for _, b := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(b); err != nil {
			testtool.Missing(t, "%s not installed (Debian package containerd; .ci/run installs it)", b)
		}
	}
	dir, err := os.MkdirTemp("", "ctrd")
	require.NoError(t, err)
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644))
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	require.NoError(t, err)
	cmd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		waited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
		logf.Close()
		_ = exec.Command("umount", "-R", filepath.Join(dir, "root")).Run()
		_ = os.RemoveAll(dir)
	})
	ctr := func(args ...string) (string, error) {
		out, err := exec.Command("ctr", append([]string{"--address", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	for i := 0; ; i++ {
		if _, err := ctr("version"); err == nil {
			break
		}
		if i == 100 {
			b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Fatalf("containerd did not start:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ctr
}

// ctrDigest returns the digest ctr lists for ref in namespace ns.
func ctrDigest(t *testing.T, ctr func(...string) (string, error), ns, ref string) string {
	t.Helper()
	out, err := ctr("-n", ns, "images", "ls")
	require.NoError(t, err, out)
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == ref {
			return f[2]
		}
	}
	t.Fatalf("%s not in ctr images ls:\n%s", ref, out)
	return ""
}

// readLayers downloads every layer of img (which checks each against its digest).
func readLayers(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	require.NoError(t, err)
	for _, l := range layers {
		rc, err := l.Compressed()
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, rc)
		require.NoError(t, err)
		rc.Close()
	}
}

func pushImage(t *testing.T, ref string, layers int) string {
	t.Helper()
	img, err := random.Image(16<<10, int64(layers))
	require.NoError(t, err)
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	require.NoError(t, remote.Write(r, img))
	d, err := img.Digest()
	require.NoError(t, err)
	return d.String()
}

func TestMirrorWithCtrAndSkopeoE2E(t *testing.T) {
	bin := sealosBin(t)
	ctr := startContainerd(t)
	if _, err := exec.LookPath("skopeo"); err != nil {
		testtool.Missing(t, "skopeo not installed (.ci/run installs it)")
	}
	connected, stopConnected := stoppableHub(t, bin, t.TempDir())
	nginx := pushImage(t, connected+"/library/nginx:1.27", 2)
	redis := pushImage(t, connected+"/library/redis:7", 3)
	site, _ := stoppableHub(t, bin, t.TempDir(), "--mirror", "docker.io=http://"+connected)

	cfg := t.TempDir()
	hostsDir := filepath.Join(cfg, "certs.d")
	regConf := filepath.Join(cfg, "registries.conf")
	mustSealos(t, nil, "", "registry", "mirror-config", "--hub", site, "--registry", "docker.io",
		"--containerd-dir", hostsDir, "--registries-conf", regConf)
	skopeo := func(args ...string) (string, error) {
		out, err := exec.Command("skopeo", append([]string{"--registries-conf", regConf, "--insecure-policy"}, args...)...).CombinedOutput()
		return string(out), err
	}

	// connected: skopeo copies nginx and ctr pulls redis, both through the site hub
	out, err := skopeo("copy", "docker://docker.io/library/nginx:1.27", "oci:"+filepath.Join(cfg, "oci")+":nginx")
	require.NoError(t, err, out)
	out, err = ctr("-n", "first", "images", "pull", "--hosts-dir", hostsDir, "docker.io/library/redis:7")
	require.NoError(t, err, out)
	assert.Equal(t, redis, ctrDigest(t, ctr, "first", "docker.io/library/redis:7"))

	// the site's own pushes keep working on the same hub
	own := pushImage(t, site+"/team/app:v1", 1)
	got, err := remote.Head(mustRefE2E(t, site+"/team/app:v1"))
	require.NoError(t, err)
	assert.Equal(t, own, got.Digest.String())

	// the connected hub goes away: both names still pull, with their original digests
	stopConnected()
	out, err = ctr("-n", "offline", "images", "pull", "--hosts-dir", hostsDir, "docker.io/library/nginx:1.27")
	require.NoError(t, err, out)
	assert.Equal(t, nginx, ctrDigest(t, ctr, "offline", "docker.io/library/nginx:1.27"))
	out, err = skopeo("inspect", "--no-tags", "--format", "{{.Digest}}", "docker://docker.io/library/redis:7")
	require.NoError(t, err, out)
	assert.Equal(t, redis, strings.TrimSpace(out))
	out, err = skopeo("copy", "docker://docker.io/library/redis:7", "oci:"+filepath.Join(cfg, "oci")+":redis")
	require.NoError(t, err, out)
}

func mustRefE2E(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	require.NoError(t, err)
	return r
}

// extractDir writes the files under prefix/ of img's filesystem into dir, as the apply
// engine does with a cluster image's registry/.
func extractDir(t *testing.T, img v1.Image, prefix, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		require.NoError(t, err)
		p := strings.TrimPrefix(h.Name, "./")
		if !strings.HasPrefix(p, prefix+"/") || strings.Contains(p, "..") {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(dst, 0o755))
		case tar.TypeReg:
			require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
			f, err := os.Create(dst)
			require.NoError(t, err)
			_, err = io.Copy(f, tr)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}
	}
}

// The air-gapped delivery: a connected hub holds images; an application image built from
// them is saved to an archive; a separate site store loads it and pushes it to the site
// hub, and the images it carries go into the hub; with the connected hub shut down,
// containerd pulls the docker.io names through the site hub with the original digests.
func TestAirGapDeliveryE2E(t *testing.T) {
	bin := sealosBin(t)
	ctr := startContainerd(t)
	connected, stopConnected := stoppableHub(t, bin, t.TempDir())
	busybox := pushImage(t, connected+"/library/busybox:1.36", 2)
	coredns := pushImage(t, connected+"/coredns/coredns:v1.11.1", 1)

	// connected side: save the images into the build context, build, save the archive
	buildRoot := t.TempDir()
	bctx := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bctx, "Kubefile"), []byte(
		"FROM scratch\nLABEL sealos.io.type=application\nCOPY registry registry\n"), 0o644))
	mustSealos(t, nil, "", "registry", "save", bctx, "--images",
		connected+"/library/busybox:1.36,"+connected+"/coredns/coredns:v1.11.1")
	mustSealos(t, nil, "", "--root", buildRoot, "build", "--progress", "plain", "-t", "delivery/app:v1", bctx)
	archive := filepath.Join(t.TempDir(), "app.tar")
	mustSealos(t, nil, "", "--root", buildRoot, "save", "-o", archive, "delivery/app:v1")
	stopConnected()

	// site: load the archive into a separate store, push the app image to the site hub
	siteRoot := t.TempDir()
	site, _ := stoppableHub(t, bin, t.TempDir(), "--mirror", "docker.io")
	mustSealos(t, nil, "", "--root", siteRoot, "load", "-i", archive)
	mustSealos(t, nil, "", "--root", siteRoot, "push", "-q", "delivery/app:v1", site+"/delivery/app:v1")
	// the images the app carries (its registry/) go into the hub
	st, err := store.Open(siteRoot)
	require.NoError(t, err)
	img, err := st.Image(context.Background(), "delivery/app:v1")
	require.NoError(t, err)
	data := t.TempDir()
	extractDir(t, img, "registry", data)
	r := mustSealos(t, nil, "", "registry", "sync", filepath.Join(data, "registry"), site)
	assert.Contains(t, r.stdout, "2 copied")

	hostsDir := filepath.Join(t.TempDir(), "certs.d")
	mustSealos(t, nil, "", "registry", "mirror-config", "--hub", site, "--registry", "docker.io", "--containerd-dir", hostsDir, "--no-fallback")
	out, err := ctr("-n", "site", "images", "pull", "--hosts-dir", hostsDir, "docker.io/library/busybox:1.36")
	require.NoError(t, err, out)
	assert.Equal(t, busybox, ctrDigest(t, ctr, "site", "docker.io/library/busybox:1.36"))
	out, err = ctr("-n", "site", "images", "pull", "--hosts-dir", hostsDir, "docker.io/coredns/coredns:v1.11.1")
	require.NoError(t, err, out)
	assert.Equal(t, coredns, ctrDigest(t, ctr, "site", "docker.io/coredns/coredns:v1.11.1"))
}
