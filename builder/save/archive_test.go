package save

import (
	"archive/tar"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ociArchive writes img as a tar of an OCI layout whose index names it ref.
func ociArchive(t *testing.T, file string, idx v1.ImageIndex, ref string) {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	require.NoError(t, err)
	require.NoError(t, p.AppendIndex(idx, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: ref})))
	require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
	f, err := os.Create(file)
	require.NoError(t, err)
	defer f.Close()
	tw := tar.NewWriter(f)
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil || d.IsDir() {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	}))
	require.NoError(t, tw.Close())
}

// The archives images/skopeo/tar.txt lists are written into registry/ under the names it
// gives, as sealos loads them, and a registry serving registry/ serves them unchanged.
func TestSaveArchives(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	skopeo := filepath.Join(dir, "images/skopeo")
	require.NoError(t, os.MkdirAll(skopeo, 0o755))

	app := randomImage(t, 2048, 2)
	tag, err := name.NewTag("example.com/whatever/app:orig")
	require.NoError(t, err)
	require.NoError(t, tarball.WriteToFile(filepath.Join(skopeo, "app.tar"), tag, app))
	fromTar, err := tarball.ImageFromPath(filepath.Join(skopeo, "app.tar"), nil)
	require.NoError(t, err)
	appDigest, err := fromTar.Digest()
	require.NoError(t, err)

	idx, err := random.Index(1024, 1, 2)
	require.NoError(t, err)
	idxDigest, err := idx.Digest()
	require.NoError(t, err)
	ociArchive(t, filepath.Join(skopeo, "oci/tool.tar"), idx, "v2")

	writeFiles(t, dir, map[string]string{
		"images/skopeo/tar.txt": "docker-archive:app.tar@library/app:v1\noci-archive:oci/tool.tar@quay.io/tools/tool:v2\n",
	})
	imgs, res, err := Context(ctx, dir, Options{CacheDir: t.TempDir()})
	require.NoError(t, err)
	require.Len(t, imgs, 2)
	require.Len(t, res.Images, 2)
	assert.Equal(t, "library/app", res.Images[0].Repository)
	assert.Equal(t, "v1", res.Images[0].Tag)
	assert.Equal(t, appDigest.String(), res.Images[0].Digest)
	assert.Equal(t, "tools/tool", res.Images[1].Repository)
	assert.Equal(t, idxDigest.String(), res.Images[1].Digest)
	assert.Equal(t, 3, res.Images[1].Manifests, "the index and both its images")
	assert.Zero(t, res.Fetched, "nothing comes from the network")

	l := Layout{Root: filepath.Join(dir, "registry")}
	got, ok := l.TagDigest("library/app", "v1")
	require.True(t, ok)
	assert.Equal(t, appDigest, got)

	host := hub(t, filepath.Join(dir, "registry"), nil)
	pulled, err := remote.Image(mustRef(t, host+"/library/app:v1"))
	require.NoError(t, err)
	d, err := pulled.Digest()
	require.NoError(t, err)
	assert.Equal(t, appDigest, d)
	layers, err := pulled.Layers()
	require.NoError(t, err)
	want, err := app.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 2)
	for i := range layers {
		a, _ := layers[i].DiffID()
		b, _ := want[i].DiffID()
		assert.Equal(t, b, a, "layer %d", i)
	}
	pidx, err := remote.Index(mustRef(t, host+"/tools/tool:v2"))
	require.NoError(t, err)
	pd, err := pidx.Digest()
	require.NoError(t, err)
	assert.Equal(t, idxDigest, pd)
	im, err := pidx.IndexManifest()
	require.NoError(t, err)
	for _, c := range im.Manifests {
		_, err := pidx.Image(c.Digest)
		assert.NoError(t, err, "child %s is served", c.Digest)
	}

	// A damaged archive fails its image only, naming it and the list that named it.
	writeFiles(t, dir, map[string]string{"images/skopeo/bad.tar": "not a tar"})
	writeFiles(t, dir, map[string]string{"images/skopeo/tar.txt": "docker-archive:bad.tar@library/bad:v1\n"})
	_, _, err = Context(ctx, dir, Options{CacheDir: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "save image library/bad:v1 named in images/skopeo/tar.txt")
	assert.Contains(t, err.Error(), "docker-archive "+filepath.Join(skopeo, "bad.tar"))
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	require.NoError(t, err)
	return r
}

func TestCheckRegistryDir(t *testing.T) {
	dir := t.TempDir()
	err := CheckRegistryDir(dir)
	require.ErrorIs(t, err, ErrNoRegistry)
	for _, part := range []string{"the Kubefile copies registry/", dir, "charts/ (Helm charts, rendered)", "manifests/ (*.yaml, *.yml, *.json, *.tmpl)", "images/shim/", "images/skopeo/tar.txt"} {
		assert.Contains(t, err.Error(), part)
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "registry"), 0o755))
	assert.NoError(t, CheckRegistryDir(dir))
}
