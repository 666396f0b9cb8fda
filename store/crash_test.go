package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteBlobVerifies(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data := []byte("hello blob")
	h, _, err := v1.SHA256(bytes.NewReader(data))
	require.NoError(t, err)

	// Wrong content for the digest: nothing becomes visible.
	_, _, err = s.WriteBlob(ctx, h, -1, bytes.NewReader([]byte("other content")))
	assert.ErrorContains(t, err, "want "+h.String())
	assert.False(t, s.HasBlob(h))
	// Wrong size: the same.
	_, _, err = s.WriteBlob(ctx, h, 3, bytes.NewReader(data))
	assert.Error(t, err)
	assert.False(t, s.HasBlob(h))
	// No temporary file is left behind.
	ents, err := os.ReadDir(filepath.Join(s.Dir(), ".sealos", "tmp"))
	require.NoError(t, err)
	assert.Empty(t, ents)

	got, n, err := s.WriteBlob(ctx, v1.Hash{}, -1, bytes.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, h, got)
	assert.Equal(t, int64(len(data)), n)
	assert.True(t, s.HasBlob(h))
}

func TestCanceledWriteLeavesNoEntry(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.WriteImage(ctx, "app:v1", randomImage(t, 1000, 2))
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Resolve(context.Background(), "app:v1")
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestDamagedManifestIsReported(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	img := randomImage(t, 100, 1)
	require.NoError(t, s.WriteImage(ctx, "app:v1", img))
	d, _ := img.Digest()
	p := filepath.Join(s.Dir(), "blobs", "sha256", d.Hex)
	require.NoError(t, os.WriteFile(p, []byte(`{"schemaVersion":2}`), 0o644))
	_, err := s.Image(ctx, "app:v1")
	assert.ErrorContains(t, err, "damaged")
	// Still listed, so it can be removed.
	list, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.NoError(t, s.Remove(ctx, "app:v1"))
}

func TestGCRemovesOldTemporaries(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	tmp := filepath.Join(s.Dir(), ".sealos", "tmp")
	old := filepath.Join(tmp, "blob-crashed")
	fresh := filepath.Join(tmp, "blob-inflight")
	require.NoError(t, os.WriteFile(old, []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(fresh, []byte("x"), 0o644))
	long := time.Now().Add(-2 * tmpMaxAge)
	require.NoError(t, os.Chtimes(old, long, long))
	_, err := s.GC(ctx)
	require.NoError(t, err)
	assert.NoFileExists(t, old)
	assert.FileExists(t, fresh)
}

func TestIndexSurvivesForeignInPlaceWrites(t *testing.T) {
	// BuildKit rewrites index.json in place; our cached read must notice the change even
	// when the size stays the same.
	ctx := context.Background()
	s := newStore(t)
	a := randomImage(t, 100, 1)
	b := randomImage(t, 100, 1)
	require.NoError(t, s.WriteImage(ctx, "app:v1", a))
	require.NoError(t, s.WriteImage(ctx, "app:v2", b))
	p := filepath.Join(s.Dir(), "index.json")
	hourAgo := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(p, hourAgo, hourAgo)) // old enough to be cached
	d, err := s.Resolve(ctx, "app:v1")
	require.NoError(t, err)
	require.NotNil(t, s.cache, "an old index.json is cached")
	raw, err := os.ReadFile(p)
	require.NoError(t, err)
	ad, _ := a.Digest()
	bd, _ := b.Digest()
	swapped := bytes.ReplaceAll(raw, []byte(ad.Hex), []byte("X"))
	swapped = bytes.ReplaceAll(swapped, []byte(bd.Hex), []byte(ad.Hex))
	swapped = bytes.ReplaceAll(swapped, []byte("X"), []byte(bd.Hex))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(swapped, 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	d, err = s.Resolve(ctx, "app:v1")
	require.NoError(t, err)
	assert.Equal(t, bd, d.Digest)
}

// BuildKit's ociindex deletes index.json.lock after unlocking it; if that happens while we
// hold the lock, another BuildKit writer could take a new lock file and write index.json
// at the same time, so the update must start over under the new lock.
func TestUpdateRetriesWhenBuildKitLockFileIsReplaced(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	img := randomImage(t, 100, 1)
	desc, err := s.writeImageBlobs(ctx, img)
	require.NoError(t, err)
	calls := 0
	r, _ := ParseRef("app:v1")
	require.NoError(t, s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
		calls++
		if calls == 1 {
			require.NoError(t, os.Remove(filepath.Join(s.Dir(), "index.json.lock")))
		}
		setEntry(idx, desc, r)
		return true, nil
	}))
	assert.Equal(t, 2, calls)
	got, err := s.Image(ctx, "app:v1")
	require.NoError(t, err)
	require.NoError(t, validateImage(got))
}
