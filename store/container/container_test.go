package container

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/apply/tree"
	"github.com/cluster-image/sealos/internal/testtool"
	"github.com/cluster-image/sealos/store"
)

type entry struct {
	name, body string
	dir        bool
}

func layer(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.dir {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		require.NoError(t, tw.WriteHeader(h))
		_, err := tw.Write([]byte(e.body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// storeImage writes an image of the given layers to st as ref.
func storeImage(t *testing.T, st *store.Store, ref string, layers ...[]byte) {
	t.Helper()
	img := empty.Image
	for _, b := range layers {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		require.NoError(t, err)
		img, err = mutate.AppendLayers(img, l)
		require.NoError(t, err)
	}
	require.NoError(t, st.WriteImage(context.Background(), ref, img))
}

func TestCreateListRemove(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := store.Open(root)
	require.NoError(t, err)
	cs := Set{Dir: filepath.Join(root, "containers")}
	storeImage(t, st, "localhost:5000/apps/kube:v1",
		layer(t, entry{name: "bin/", dir: true}, entry{name: "bin/kubeadm", body: "kubeadm"}, entry{name: "etc/old.conf", body: "old"}),
		layer(t, entry{name: "etc/.wh.old.conf"}, entry{name: "Kubefile", body: "FROM scratch"}))

	c, err := cs.Create(ctx, st, "localhost:5000/apps/kube:v1", "")
	require.NoError(t, err)
	assert.Equal(t, "kube-working-container", c.Name)
	b, err := os.ReadFile(filepath.Join(c.Path, "bin/kubeadm"))
	require.NoError(t, err)
	assert.Equal(t, "kubeadm", string(b))
	assert.FileExists(t, filepath.Join(c.Path, "Kubefile"))
	assert.NoFileExists(t, filepath.Join(c.Path, "etc/old.conf"), "deleted by the upper layer")

	c2, err := cs.Create(ctx, st, "localhost:5000/apps/kube:v1", "")
	require.NoError(t, err)
	assert.Equal(t, "kube-working-container-2", c2.Name)
	_, err = cs.Create(ctx, st, "localhost:5000/apps/kube:v1", "kube-working-container")
	assert.ErrorContains(t, err, "exists")
	_, err = cs.Create(ctx, st, "localhost:5000/apps/kube:v1", "../escape")
	assert.ErrorContains(t, err, "container name")
	_, err = cs.Create(ctx, st, "nosuch:v1", "x")
	assert.ErrorIs(t, err, store.ErrNotFound)
	assert.NoDirExists(t, filepath.Join(cs.Dir, "x"))

	list, err := cs.List()
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, c.Name, list[0].Name)
	assert.Equal(t, c.ImageDigest, list[1].ImageDigest)

	require.NoError(t, cs.Remove(c.Name))
	assert.NoDirExists(t, filepath.Join(cs.Dir, c.Name))
	assert.ErrorIs(t, cs.Remove(c.Name), ErrNotFound)
	_, err = cs.Get("../x")
	assert.ErrorIs(t, err, ErrNotFound)
}

// An image whose entries climb out (a "../" name, a file below a symlink to outside)
// writes nothing outside its container.
func TestCreateUnsafeImageStaysInside(t *testing.T) {
	root := t.TempDir()
	st, err := store.Open(root)
	require.NoError(t, err)
	cs := Set{Dir: filepath.Join(root, "containers")}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "escape", Typeflag: tar.TypeSymlink, Linkname: "../../..", Mode: 0o777}))
	for _, n := range []string{"escape/pwned", "../../outside"} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}))
		_, err = tw.Write([]byte("x"))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	storeImage(t, st, "evil:v1", buf.Bytes())
	c, err := cs.Create(context.Background(), st, "evil:v1", "evil")
	if err != nil {
		assert.ErrorIs(t, err, tree.ErrUnsafePath)
		assert.NoDirExists(t, filepath.Join(cs.Dir, "evil"), "a failed create leaves nothing")
	} else if real, err := filepath.EvalSymlinks(filepath.Join(c.Path, "escape/pwned")); err == nil {
		assert.True(t, strings.HasPrefix(real, c.Path+"/"), "%s is outside the container", real)
	}
	for _, p := range []string{filepath.Join(root, "outside"), filepath.Join(root, "pwned"), filepath.Join(cs.Dir, "pwned"), filepath.Join(cs.Dir, "outside")} {
		assert.NoFileExists(t, p)
	}
}

// validName accepts exactly what the documented pattern accepts.
func TestValidNameMatchesItsPattern(t *testing.T) {
	re := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	cases := []string{"", "app", "app-1.v2_x", "_x", ".x", "-x", "a/b", "é",
		strings.Repeat("a", 128), strings.Repeat("a", 129)}
	cases = append(cases, testtool.RandomStrings(3, 20000, 130, "aZ09_.-/:é \x00")...)
	for _, c := range cases {
		if got, want := validName(c), re.MatchString(c); got != want {
			t.Fatalf("validName(%q) = %v, the pattern says %v", c, got, want)
		}
	}
}
