package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeBoot makes the store believe it runs in boot id until the test ends.
func fakeBoot(t *testing.T, id *string) {
	old := bootID
	bootID = func() string { return *id }
	t.Cleanup(func() { bootID = old })
}

// writeDeferred stores img under ref the way a pull does: every blob announced first.
func writeDeferred(t *testing.T, s *Store, ref string, img v1.Image) {
	t.Helper()
	ctx := context.Background()
	ls, err := img.Layers()
	require.NoError(t, err)
	var hs []v1.Hash
	for _, l := range ls {
		h, err := l.Digest()
		require.NoError(t, err)
		hs = append(hs, h)
	}
	cfg, err := img.ConfigName()
	require.NoError(t, err)
	m, err := img.Digest()
	require.NoError(t, err)
	require.NoError(t, s.DeferSync(append(hs, cfg, m)))
	require.NoError(t, s.WriteImage(ctx, ref, img))
}

// storeWithDeferredImage opens a store in a new directory and writes a random image under
// ref as a pull does.
func storeWithDeferredImage(t *testing.T, ref string) (string, *Store, v1.Image) {
	t.Helper()
	dir := t.TempDir()
	s, err := OpenDir(dir)
	require.NoError(t, err)
	img, err := random.Image(1024, 1)
	require.NoError(t, err)
	writeDeferred(t, s, ref, img)
	return dir, s, img
}

func journals(t *testing.T, s *Store) []string {
	ents, err := os.ReadDir(s.path(privateDir, unsyncedDir))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestWritebackRecoveryAfterReboot: blobs written without an fsync each, then a "reboot"
// that lost one of them: the next Open deletes the damaged blob, drops the image that
// needs it (and only that one), keeps intact blobs and images, and retires the journal.
func TestWritebackRecoveryAfterReboot(t *testing.T) {
	boot := "boot-1"
	fakeBoot(t, &boot)
	dir := t.TempDir()
	s, err := OpenDir(dir)
	require.NoError(t, err)
	broken, err := random.Image(4096, 2)
	require.NoError(t, err)
	intact, err := random.Image(4096, 2)
	require.NoError(t, err)
	writeDeferred(t, s, "broken:v1", broken)
	writeDeferred(t, s, "intact:v1", intact)
	require.Len(t, journals(t, s), 1, "one journal per store handle")
	assert.Contains(t, journals(t, s)[0], "boot-1.")

	// the power went out before the kernel wrote back the first layer of "broken"
	ls, err := broken.Layers()
	require.NoError(t, err)
	lost, err := ls[0].Digest()
	require.NoError(t, err)
	require.NoError(t, os.Truncate(s.blobPath(lost), 100))

	// the same boot: nothing is checked (the page cache holds the data)
	s2, err := OpenDir(dir)
	require.NoError(t, err)
	assert.FileExists(t, s2.blobPath(lost))
	assert.Len(t, journals(t, s2), 1)

	boot = "boot-2"
	s3, err := OpenDir(dir)
	require.NoError(t, err)
	assert.NoFileExists(t, s3.blobPath(lost), "a blob with other content than its digest is deleted")
	assert.Empty(t, journals(t, s3))
	_, err = s3.Resolve(context.Background(), "broken:v1")
	assert.ErrorIs(t, err, ErrNotFound, "the image that lost a blob is no longer named")
	img, err := s3.Image(context.Background(), "intact:v1")
	require.NoError(t, err)
	require.NoError(t, validateImage(img), "the other image is whole")
	ls2, err := broken.Layers()
	require.NoError(t, err)
	other, err := ls2[1].Digest()
	require.NoError(t, err)
	assert.FileExists(t, s3.blobPath(other), "intact blobs stay")

	// writing it again works and is named again
	writeDeferred(t, s3, "broken:v1", broken)
	img, err = s3.Image(context.Background(), "broken:v1")
	require.NoError(t, err)
	require.NoError(t, validateImage(img))
}

// TestWritebackMissingAndTorn: a journal whose blob never reached the disk at all, and
// whose last line was torn by the crash, is handled like the rest.
func TestWritebackMissingAndTorn(t *testing.T) {
	boot := "boot-1"
	fakeBoot(t, &boot)
	dir, s, img := storeWithDeferredImage(t, "gone:v1")
	m, err := img.Digest()
	require.NoError(t, err)
	require.NoError(t, os.Remove(s.blobPath(m)))
	j := filepath.Join(s.path(privateDir, unsyncedDir), journals(t, s)[0])
	f, err := os.OpenFile(j, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("sha256:12ab")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	boot = "boot-2"
	s2, err := OpenDir(dir)
	require.NoError(t, err)
	_, err = s2.Resolve(context.Background(), "gone:v1")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Empty(t, journals(t, s2))
}

// TestWritebackRetire: a journal of this boot is deleted once settled (after a syncfs),
// not before.
func TestWritebackRetire(t *testing.T) {
	boot := "boot-1"
	fakeBoot(t, &boot)
	dir, s, _ := storeWithDeferredImage(t, "a:v1")
	j := filepath.Join(s.path(privateDir, unsyncedDir), journals(t, s)[0])

	s2, err := OpenDir(dir)
	require.NoError(t, err)
	s2.journal.bg.Wait()
	assert.FileExists(t, j, "young: the kernel may not have written the blobs back yet")

	old := time.Now().Add(-writebackSettle - time.Minute)
	require.NoError(t, os.Chtimes(j, old, old))
	s3, err := OpenDir(dir)
	require.NoError(t, err)
	s3.journal.bg.Wait()
	assert.NoFileExists(t, j)
	_, err = s3.Resolve(context.Background(), "a:v1")
	assert.NoError(t, err)
}

// TestDeferSyncWithoutBootID: where no boot ID can be read, nothing is deferred.
func TestDeferSyncWithoutBootID(t *testing.T) {
	boot := ""
	fakeBoot(t, &boot)
	s, err := OpenDir(t.TempDir())
	require.NoError(t, err)
	img, err := random.Image(1024, 1)
	require.NoError(t, err)
	writeDeferred(t, s, "a:v1", img)
	assert.Empty(t, journals(t, s))
	h, err := img.Digest()
	require.NoError(t, err)
	assert.False(t, s.syncDeferred(h))
}
