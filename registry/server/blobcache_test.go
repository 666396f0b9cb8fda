package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingDriver counts the blob reads that reach the storage.
type countingDriver struct {
	storagedriver.StorageDriver
	reads atomic.Int64
}

func (d *countingDriver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	d.reads.Add(1)
	return d.StorageDriver.Reader(ctx, p, offset)
}

func cacheBlobPath(h string) string { return blobDataPrefix + h[:2] + "/" + h + "/data" }

// putTestBlob stores data as a blob and returns its hex digest.
func putTestBlob(t *testing.T, d storagedriver.StorageDriver, data []byte) string {
	t.Helper()
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	require.NoError(t, d.PutContent(context.Background(), cacheBlobPath(h), data))
	return h
}

func readAll(t *testing.T, d storagedriver.StorageDriver, h string, offset int64, limit int64) []byte {
	t.Helper()
	rc, err := d.Reader(context.Background(), cacheBlobPath(h), offset)
	require.NoError(t, err)
	var r io.Reader = rc
	if limit >= 0 {
		r = io.LimitReader(rc, limit) // as distribution reads: the blob's size, no EOF
	}
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	return b
}

func newCaching(t *testing.T, max int64) (*cachingDriver, *countingDriver) {
	t.Helper()
	base := &countingDriver{StorageDriver: inmemory.New()}
	c, err := newBlobCache(t.TempDir(), max)
	require.NoError(t, err)
	return &cachingDriver{StorageDriver: base, c: c}, base
}

func TestBlobHex(t *testing.T) {
	h := hex.EncodeToString(make([]byte, 32))
	got, ok := blobHex(cacheBlobPath(h))
	assert.True(t, ok)
	assert.Equal(t, h, got)
	for _, p := range []string{
		"/docker/registry/v2/repositories/a/_layers/sha256/" + h + "/link",
		blobDataPrefix + "ab/" + h + "/data", // wrong fan-out directory
		blobDataPrefix + h[:2] + "/" + h,
		blobDataPrefix + h[:2] + "/" + h[:62] + "zz/data",
		"/docker/registry/v2/blobs/sha512/" + h[:2] + "/" + h + "/data",
	} {
		_, ok := blobHex(p)
		assert.False(t, ok, p)
	}
}

// A blob read whole a second time is served from the cache after, whether the reader saw
// EOF or stopped at the blob's size; first, cut, offset and wrong reads keep nothing.
func TestBlobCacheFillsOnWholeVerifiedReads(t *testing.T) {
	d, base := newCaching(t, 1<<20)
	data := bytes.Repeat([]byte("layer "), 10000)
	h := putTestBlob(t, base, data)

	assert.Equal(t, data, readAll(t, d, h, 0, int64(len(data))))
	assert.NoFileExists(t, d.c.path(h), "a blob read once is not kept")
	assert.Equal(t, data, readAll(t, d, h, 0, int64(len(data)))) // no EOF seen
	assert.FileExists(t, d.c.path(h), "read again: kept")
	assert.Equal(t, int64(2), base.reads.Load())
	for range 3 {
		assert.Equal(t, data, readAll(t, d, h, 0, -1))
	}
	assert.Equal(t, int64(2), base.reads.Load(), "served from the cache")
	assert.Equal(t, data[100:], readAll(t, d, h, 100, -1), "an offset into a cached blob")
	assert.Equal(t, int64(2), base.reads.Load())
	hits, fills, size := d.c.stats()
	assert.Equal(t, int64(4), hits)
	assert.Equal(t, int64(1), fills)
	assert.Equal(t, int64(len(data)), size)

	// a fill cut short, and a read from an offset: not kept
	other := bytes.Repeat([]byte("other "), 5000)
	h2 := putTestBlob(t, base, other)
	readAll(t, d, h2, 0, -1)
	assert.Equal(t, other[:10], readAll(t, d, h2, 0, 10))
	assert.NoFileExists(t, d.c.path(h2))
	assert.Equal(t, other[7:], readAll(t, d, h2, 7, -1))
	assert.NoFileExists(t, d.c.path(h2))
	readAll(t, d, h2, 0, -1)
	assert.FileExists(t, d.c.path(h2), "the next whole read fills it")
	assert.Equal(t, int64(6), base.reads.Load())
	readAll(t, d, h2, 0, -1)
	assert.Equal(t, int64(6), base.reads.Load())

	// bytes that are not the blob's are never kept
	bad := bytes.Repeat([]byte("x"), 100)
	fake := hex.EncodeToString(make([]byte, 32))
	require.NoError(t, base.PutContent(context.Background(), cacheBlobPath(fake), bad))
	for range 3 {
		readAll(t, d, fake, 0, -1)
	}
	assert.Equal(t, int64(9), base.reads.Load())
	assert.NoFileExists(t, d.c.path(fake))
	matches, _ := filepath.Glob(filepath.Join(d.c.dir, ".fill-*"))
	assert.Empty(t, matches, "no half-written files left")
}

// The cache stays within its size, the least recently used going first; a delete
// through the replica forgets the blob; leftovers of a killed process go at start.
func TestBlobCacheBoundsAndForgets(t *testing.T) {
	d, base := newCaching(t, 4<<10) // 4 KiB: blobs up to 1 KiB are kept
	var hs []string
	for i := range 6 {
		h := putTestBlob(t, base, bytes.Repeat([]byte{byte('a' + i)}, 1000))
		readAll(t, d, h, 0, -1)
		readAll(t, d, h, 0, -1)
		hs = append(hs, h)
	}
	_, _, size := d.c.stats()
	assert.LessOrEqual(t, size, int64(4<<10))
	assert.FileExists(t, d.c.path(hs[5]), "the newest is kept")
	assert.NoFileExists(t, d.c.path(hs[0]), "the oldest went")

	big := putTestBlob(t, base, bytes.Repeat([]byte("b"), 2000))
	readAll(t, d, big, 0, -1)
	readAll(t, d, big, 0, -1)
	assert.NoFileExists(t, d.c.path(big), "larger than a quarter of the cache: not kept")

	require.NoError(t, d.Delete(context.Background(), blobDataPrefix+hs[5][:2]+"/"+hs[5]))
	assert.NoFileExists(t, d.c.path(hs[5]))

	require.NoError(t, os.WriteFile(filepath.Join(d.c.dir, ".fill-deadbeef-1"), []byte("half"), 0o644))
	c2, err := newBlobCache(d.c.dir, 4<<10)
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(d.c.dir, ".fill-deadbeef-1"))
	_, _, size2 := c2.stats()
	assert.Positive(t, size2)
}
