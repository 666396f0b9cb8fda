package apply_test

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/apply"
	"github.com/cluster-image/sealos/apply/applytest"
	"github.com/cluster-image/sealos/registry/server"
)

// sealosBinary is $SEALOS_BIN (set by make test) or a binary built for the test.
func sealosBinary(t *testing.T) string {
	if b := os.Getenv("SEALOS_BIN"); b != "" {
		return b
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "sealos")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sealos")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "build sealos: %s", b)
	return bin
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// registryFiles returns a distribution layout holding test/app:v1, as registry/... files.
func registryFiles(t *testing.T) (map[string]string, string) {
	dir := t.TempDir()
	srv, err := server.New(server.Config{RootDirectory: dir})
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	img, err := random.Image(2048, 2)
	require.NoError(t, err)
	ref, err := name.ParseReference(strings.TrimPrefix(hs.URL, "http://") + "/test/app:v1")
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img))
	hs.Close()
	srv.Close()
	d, _ := img.Digest()
	files := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		files["registry/"+filepath.ToSlash(rel)] = string(b)
		return err
	}))
	return files, d.String()
}

func TestApplyRegistry(t *testing.T) {
	e := newEnv(t, 3, 7)
	ctx := context.Background()
	bin := sealosBinary(t)
	files, digest := registryFiles(t)
	files["bin/x"] = "x"
	img := applytest.Image(applytest.Config{Labels: applytest.Rootfs()}, applytest.Layer(files))
	require.NoError(t, e.st.WriteImage(ctx, "test/rootfs-registry:v1", img))
	port := freePort(t)
	e.extra = []string{fmt.Sprintf("registryPort=%d", port), "registryData=/var/lib/sealos/registry-data"}
	c := e.cluster(e.ips[:1], e.ips[1:], "test/rootfs-registry:v1")
	opts := func(o *apply.Options) { o.SealosBinary = bin }
	_, _, err := e.apply(c, opts)
	require.NoError(t, err, e.out.String())

	// From every node, by name, the registry on the master serves the embedded image.
	var out safeBuffer
	cmd := fmt.Sprintf("curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' -o /dev/null -w '%%{http_code} ' http://sealos.hub:%d/v2/test/app/manifests/%s && getent hosts sealos.hub", port, digest)
	require.NoError(t, apply.Exec(ctx, apply.HostsOptions{Root: e.root, Name: "default", Out: &out}, cmd), out.String())
	for _, ip := range e.ips {
		assert.Contains(t, out.String(), fmt.Sprintf("%s: 200 %s", ip, e.ips[0]), out.String())
	}

	// Unchanged re-run: the registry keeps running, nothing restarted.
	pid := e.read(0, "/var/lib/sealos/data/default/registry.pid")
	_, p, err := e.apply(c, opts)
	require.NoError(t, err, e.out.String())
	assert.Zero(t, p.Files.Load())
	assert.Equal(t, pid, e.read(0, "/var/lib/sealos/data/default/registry.pid"))

	require.NoError(t, apply.Reset(ctx, apply.ResetOptions{Root: e.root, Name: "default", Out: e.out}))
	_, err = net.Dial("tcp", net.JoinHostPort(e.ips[0], fmt.Sprint(port)))
	assert.Error(t, err, "the registry is stopped")
	assert.NotContains(t, e.read(1, "/etc/hosts"), "sealos.hub")
	_, err = os.Stat(e.set.Path(0, "/var/lib/sealos/registry-data"))
	assert.True(t, os.IsNotExist(err))
}
