package store

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	return s
}

func randomImage(t testing.TB, size int64, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(size, layers)
	require.NoError(t, err)
	return img
}

func readIndexJSON(t testing.TB, s *Store) v1.IndexManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir(), "index.json"))
	require.NoError(t, err)
	var idx v1.IndexManifest
	require.NoError(t, json.Unmarshal(b, &idx))
	return idx
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"app":                          "docker.io/library/app:latest",
		"app:v1":                       "docker.io/library/app:v1",
		"user/app:v1":                  "docker.io/user/app:v1",
		"docker.io/library/app:v1":     "docker.io/library/app:v1",
		"index.docker.io/library/app":  "docker.io/library/app:latest",
		"localhost:5000/x/y:z":         "localhost:5000/x/y:z",
		"localhost/app:v1":             "localhost/app:v1",
		"sealos.hub:5000/k8s:v1.30":    "sealos.hub:5000/k8s:v1.30",
		"app@sha256:" + sixtyFour("a"): "docker.io/library/app@sha256:" + sixtyFour("a"),
	} {
		got, err := NormalizeRef(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := NormalizeRef("Bad Ref")
	assert.Error(t, err)
}

func sixtyFour(c string) string {
	out := ""
	for range 64 {
		out += c
	}
	return out
}

func TestWriteImageAndRead(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	img := randomImage(t, 1024, 3)
	require.NoError(t, s.WriteImage(ctx, "app:v1", img))

	idx := readIndexJSON(t, s)
	require.Len(t, idx.Manifests, 1)
	d := idx.Manifests[0]
	assert.Equal(t, "docker.io/library/app:v1", d.Annotations[AnnotationImageName])
	assert.Equal(t, "v1", d.Annotations[AnnotationRefName])
	want, _ := img.Digest()
	assert.Equal(t, want, d.Digest)

	for _, ref := range []string{"app:v1", "docker.io/library/app:v1", "library/app:v1", "app@" + want.String(), want.Hex[:8], want.String()} {
		got, err := s.Image(ctx, ref)
		require.NoError(t, err, ref)
		gd, _ := got.Digest()
		assert.Equal(t, want, gd, ref)
	}
	cfg, _ := img.ConfigName()
	_, err := s.Resolve(ctx, cfg.Hex[:12])
	require.NoError(t, err, "image ID prefix")

	_, err = s.Resolve(ctx, "app:v2")
	assert.True(t, errors.Is(err, ErrNotFound), "%v", err)

	got, err := s.Image(ctx, "app:v1")
	require.NoError(t, err)
	layers, err := got.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 3)
	// ggcr's own validation reads every blob and checks every digest.
	require.NoError(t, validateImage(got))
}

func TestWriteIndexAndPlatform(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	amd := randomImage(t, 512, 1)
	arm := randomImage(t, 512, 1)
	ii := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	require.NoError(t, s.WriteIndex(ctx, "localhost:5000/multi:v1", ii))

	gotIdx, err := s.ImageIndex(ctx, "localhost:5000/multi:v1")
	require.NoError(t, err)
	wantD, _ := ii.Digest()
	gotD, _ := gotIdx.Digest()
	assert.Equal(t, wantD, gotD)

	img, err := s.Image(ctx, "localhost:5000/multi:v1", WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	require.NoError(t, err)
	d1, _ := img.Digest()
	d2, _ := arm.Digest()
	assert.Equal(t, d2, d1)

	// A child by digest reference.
	armD, _ := arm.Digest()
	_, err = s.Image(ctx, "localhost:5000/multi@"+armD.String())
	require.NoError(t, err)

	_, err = s.ImageIndex(ctx, "localhost:5000/multi:v1")
	require.NoError(t, err)
	require.NoError(t, s.WriteImage(ctx, "single:v1", amd))
	_, err = s.ImageIndex(ctx, "single:v1")
	assert.True(t, errors.Is(err, ErrNotIndex))

	list, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, "docker.io/library/single:v1", list[0].Name)
	assert.Equal(t, "localhost:5000/multi:v1", list[1].Name)
	assert.True(t, list[1].Index)
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, list[1].Platforms)
	assert.Equal(t, wantD, list[1].ID)
}

func TestTag(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	img := randomImage(t, 256, 1)
	require.NoError(t, s.WriteImage(ctx, "app:v1", img))
	require.NoError(t, s.Tag(ctx, "app:v1", "localhost:5000/app:v2"))
	require.NoError(t, s.Tag(ctx, "app:v1", "app:latest"))
	// Re-tagging replaces.
	require.NoError(t, s.Tag(ctx, "app:v1", "app:latest"))
	list, err := s.List(ctx)
	require.NoError(t, err)
	var names []string
	for _, e := range list {
		names = append(names, e.Name)
	}
	assert.Equal(t, []string{"docker.io/library/app:latest", "docker.io/library/app:v1", "localhost:5000/app:v2"}, names)
	assert.Error(t, s.Tag(ctx, "nope:v1", "x:y"))
}
