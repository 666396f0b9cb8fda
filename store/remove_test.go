package store

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blobSet lists the blobs in the store.
func blobSet(t testing.TB, s *Store) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Dir(), "blobs", "sha256"))
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// imageBlobs lists the blobs of img: manifest, config, layers.
func imageBlobs(t testing.TB, imgs ...v1.Image) []string {
	t.Helper()
	set := map[string]bool{}
	for _, img := range imgs {
		d, err := img.Digest()
		require.NoError(t, err)
		set[d.Hex] = true
		c, err := img.ConfigName()
		require.NoError(t, err)
		set[c.Hex] = true
		ls, err := img.Layers()
		require.NoError(t, err)
		for _, l := range ls {
			h, err := l.Digest()
			require.NoError(t, err)
			set[h.Hex] = true
		}
	}
	var out []string
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

func TestRemoveOnlyUnreferencedBlobs(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a := randomImage(t, 500, 3)
	extra, err := random.Layer(300, "application/vnd.oci.image.layer.v1.tar+gzip")
	require.NoError(t, err)
	b, err := mutate.AppendLayers(a, extra) // shares a's three layers
	require.NoError(t, err)
	require.NoError(t, s.WriteImage(ctx, "app:v1", a))
	require.NoError(t, s.Tag(ctx, "app:v1", "app:latest"))
	require.NoError(t, s.WriteImage(ctx, "app:v2", b))
	require.Equal(t, imageBlobs(t, a, b), blobSet(t, s))

	// By name: only the name goes while another name keeps the image.
	rep, err := s.RemoveImages(ctx, RemoveOptions{}, "app:latest")
	require.NoError(t, err)
	assert.Equal(t, []string{"docker.io/library/app:latest"}, rep.Untagged)
	assert.Empty(t, rep.Deleted)
	assert.Equal(t, imageBlobs(t, a, b), blobSet(t, s))

	require.NoError(t, s.Tag(ctx, "app:v1", "app:latest"))
	// By ID with two names: refused without force, like docker.
	id, _ := a.ConfigName()
	_, err = s.RemoveImages(ctx, RemoveOptions{}, id.Hex[:12])
	assert.ErrorIs(t, err, ErrInUse)
	assert.Len(t, names(t, s), 3)

	rep, err = s.RemoveImages(ctx, RemoveOptions{Force: true}, id.Hex[:12])
	require.NoError(t, err)
	sort.Strings(rep.Untagged)
	assert.Equal(t, []string{"docker.io/library/app:latest", "docker.io/library/app:v1"}, rep.Untagged)
	ad, _ := a.Digest()
	assert.Equal(t, []v1.Hash{ad}, rep.Deleted)
	assert.Equal(t, 2, rep.GC.Blobs, "a's manifest and config; its layers are b's too")
	assert.Equal(t, imageBlobs(t, b), blobSet(t, s))
	got, err := s.Image(ctx, "app:v2")
	require.NoError(t, err)
	require.NoError(t, validateImage(got))

	// Missing refs fail but do not stop the others.
	err = s.Remove(ctx, "nope:v1", "app:v2")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Empty(t, names(t, s))
	assert.Empty(t, blobSet(t, s))
}

func TestRemoveIndex(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	ii := testIndex(t)
	require.NoError(t, s.WriteIndex(ctx, "multi:v1", ii))
	single := randomImage(t, 100, 1)
	require.NoError(t, s.WriteImage(ctx, "single:v1", single))
	d, _ := ii.Digest()
	// A child of an index cannot be removed on its own.
	im, _ := ii.IndexManifest()
	err := s.Remove(ctx, "multi@"+im.Manifests[0].Digest.String())
	assert.ErrorContains(t, err, "part of an image index")

	require.NoError(t, s.Remove(ctx, d.Hex[:10]))
	assert.Equal(t, imageBlobs(t, single), blobSet(t, s))
}

func TestGCWaitsForLease(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	release, err := s.Lease(ctx)
	require.NoError(t, err)
	img := randomImage(t, 100, 1)
	// Blobs written under a lease, not yet in index.json.
	desc, err := s.writeImageBlobs(ctx, img)
	require.NoError(t, err)
	done := make(chan GCReport)
	go func() {
		rep, err := s.GC(ctx)
		assert.NoError(t, err)
		done <- rep
	}()
	require.NoError(t, s.TagDescriptor(ctx, v1.Descriptor{Digest: desc.Digest}, "app:v1"))
	release()
	rep := <-done
	assert.Zero(t, rep.Blobs)
	got, err := s.Image(ctx, "app:v1")
	require.NoError(t, err)
	require.NoError(t, validateImage(got))

	// Without a name the same blobs are garbage.
	require.NoError(t, s.Remove(ctx, "app:v1"))
	assert.Empty(t, blobSet(t, s))
}

// A blob another directory holds by hard link (the build cache) is removed from the store
// without its bytes leaving the disk: GC counts it as held, not freed.
func TestGCCountsHeldBlobs(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	img := randomImage(t, 4096, 2)
	require.NoError(t, s.WriteImage(ctx, "held:v1", img))
	layers, err := img.Layers()
	require.NoError(t, err)
	d, err := layers[0].Digest()
	require.NoError(t, err)
	size, err := layers[0].Size()
	require.NoError(t, err)
	other := filepath.Join(t.TempDir(), "cache-copy")
	require.NoError(t, os.Link(s.blobPath(d), other))

	rep, err := s.RemoveImages(ctx, RemoveOptions{}, "held:v1")
	require.NoError(t, err)
	assert.Equal(t, 4, rep.GC.Blobs, "manifest, config, two layers")
	assert.Equal(t, size, rep.GC.Held)
	raw, err := img.RawManifest()
	require.NoError(t, err)
	m, err := img.Manifest()
	require.NoError(t, err)
	otherLayer := m.Layers[1].Size
	assert.Equal(t, int64(len(raw))+m.Config.Size+otherLayer, rep.GC.Bytes, "freed: what had no other name")
	_, err = os.Stat(other)
	assert.NoError(t, err, "the other name keeps the bytes")
}
