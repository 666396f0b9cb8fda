package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Hostile archives for Load: crafted here from a real saved image.

// archiveEntry is an entry of a crafted archive: body, or size bytes of zeros.
type archiveEntry struct {
	name  string
	body  []byte
	zeros int64
}

// writeArchive writes entries as a tar (gzipped when gz) to a file and returns its path
// and size.
func writeArchive(t *testing.T, entries []archiveEntry, gz bool) (string, int64) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "archive.tar")
	f, err := os.Create(p)
	require.NoError(t, err)
	var w io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw, err = gzip.NewWriterLevel(f, gzip.BestCompression)
		require.NoError(t, err)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		size := int64(len(e.body))
		var r io.Reader = bytes.NewReader(e.body)
		if e.zeros > 0 {
			size, r = e.zeros, io.LimitReader(zeroReader{}, e.zeros)
		}
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size}))
		_, err := io.Copy(tw, r)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	if zw != nil {
		require.NoError(t, zw.Close())
	}
	fi, err := f.Stat()
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return p, fi.Size()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func zerosDigest(n int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, io.LimitReader(zeroReader{}, n))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// savedEntries saves app:v1 (layers of layerSize bytes) from a fresh store in format.
func savedEntries(t *testing.T, format string, layerSize int64) []archiveEntry {
	t.Helper()
	ctx := context.Background()
	src := newStore(t)
	require.NoError(t, src.WriteImage(ctx, "app:v1", randomImage(t, layerSize, 2)))
	var buf bytes.Buffer
	require.NoError(t, src.Save(ctx, &buf, format, "app:v1"))
	var out []archiveEntry
	for _, e := range readEntries(t, buf.Bytes()) {
		out = append(out, archiveEntry{name: e.name, body: e.body})
	}
	return out
}

// rewrite replaces the body of the entry called name by fn's result.
func rewrite(t *testing.T, entries []archiveEntry, name string, fn func([]byte) []byte) []archiveEntry {
	t.Helper()
	for i, e := range entries {
		if e.name == name {
			entries[i].body = fn(e.body)
			return entries
		}
	}
	t.Fatalf("no entry %s", name)
	return nil
}

// storeFiles lists every file under the store (but the lock files) with its size, and
// the bytes of its blobs.
func storeFiles(t *testing.T, s *Store) (map[string]int64, int64) {
	t.Helper()
	files := map[string]int64{}
	var blobBytes int64
	require.NoError(t, filepath.Walk(s.Dir(), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || strings.HasSuffix(p, ".lock") {
			return err
		}
		rel, _ := filepath.Rel(s.Dir(), p)
		files[rel] = fi.Size()
		if strings.HasPrefix(rel, "blobs/") {
			blobBytes += fi.Size()
		}
		return nil
	}))
	return files, blobBytes
}

func loadFile(t *testing.T, s *Store, p string) ([]string, error) {
	t.Helper()
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	return s.Load(context.Background(), f)
}

// Names that are not valid references are refused, with the entry named, and nothing
// is written.
func TestLoadRefusesInvalidNames(t *testing.T) {
	bad := []string{"../../x:1", "a/../b:1", "/abs:1", "x//y:1", "UPPER/case:1", "-x:1"}
	for _, n := range bad {
		for _, annotation := range []string{AnnotationImageName, AnnotationRefName} {
			t.Run("oci "+annotation+" "+n, func(t *testing.T) {
				entries := rewrite(t, savedEntries(t, FormatOCIArchive, 100), "index.json", func(b []byte) []byte {
					var idx map[string]any
					require.NoError(t, json.Unmarshal(b, &idx))
					m := idx["manifests"].([]any)[0].(map[string]any)
					m["annotations"] = map[string]string{annotation: n}
					out, _ := json.Marshal(idx)
					return out
				})
				p, _ := writeArchive(t, entries, false)
				s := newStore(t)
				before, _ := storeFiles(t, s)
				_, err := loadFile(t, s, p)
				require.Error(t, err)
				assert.Contains(t, err.Error(), n)
				assert.Contains(t, err.Error(), "not a valid image reference")
				after, _ := storeFiles(t, s)
				assert.Equal(t, before, after)
			})
		}
		t.Run("docker "+n, func(t *testing.T) {
			entries := rewrite(t, savedEntries(t, FormatDockerArchive, 100), "manifest.json", func(b []byte) []byte {
				var mf []map[string]any
				require.NoError(t, json.Unmarshal(b, &mf))
				mf[0]["RepoTags"] = []string{"ok:v1", n}
				out, _ := json.Marshal(mf)
				return out
			})
			p, _ := writeArchive(t, entries, false)
			s := newStore(t)
			before, _ := storeFiles(t, s)
			_, err := loadFile(t, s, p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), n)
			after, _ := storeFiles(t, s)
			assert.Equal(t, before, after)
		})
	}
	// Nor can such a name be given to an image any other way.
	s := newStore(t)
	assert.Error(t, s.WriteImage(context.Background(), "../../x:1", randomImage(t, 10, 1)))
}

// A blob no manifest refers to is not written, however big: here a gzip bomb of zeros
// put before index.json, so it cannot be known unreferenced when it is read.
func TestLoadWritesOnlyReferencedBlobs(t *testing.T) {
	const bomb = 256 << 20
	bombDigest := zerosDigest(bomb)
	bombEntry := archiveEntry{name: "blobs/sha256/" + strings.TrimPrefix(bombDigest, "sha256:"), zeros: bomb}
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			entries := append([]archiveEntry{bombEntry}, savedEntries(t, format, 1000)...)
			p, size := writeArchive(t, entries, true)
			s := newStore(t)
			_, blobsBefore := storeFiles(t, s)
			loaded, err := loadFile(t, s, p)
			require.NoError(t, err)
			assert.Equal(t, []string{"docker.io/library/app:v1"}, loaded)
			files, blobsAfter := storeFiles(t, s)
			var total int64
			for _, n := range files {
				total += n
			}
			t.Logf("%s: archive of %d bytes with a %d-byte unreferenced blob: %d bytes of blobs written, %d bytes in the store", format, size, int64(bomb), blobsAfter-blobsBefore, total)
			assert.False(t, s.HasBlob(mustHash(t, bombDigest)))
			assert.Less(t, total, int64(1<<20))
		})
	}
}

// A load that fails half way leaves no blob that nothing refers to: neither an
// unreferenced blob of the archive nor the layers it stored before the failure.
func TestFailedLoadLeavesNoNewBlobs(t *testing.T) {
	ctx := context.Background()
	const junk = 20 << 20
	junkDigest := zerosDigest(junk)
	entries := savedEntries(t, FormatOCIArchive, 2<<20)
	// Corrupt the last layer of the archive (same size, other bytes).
	var layers []int
	for i, e := range entries {
		if strings.HasPrefix(e.name, "blobs/") && len(e.body) > 1<<20 {
			layers = append(layers, i)
		}
	}
	require.Len(t, layers, 2)
	last := layers[len(layers)-1]
	entries[last].body = bytes.Repeat([]byte{'x'}, len(entries[last].body))
	entries = append(entries, archiveEntry{name: "blobs/sha256/" + strings.TrimPrefix(junkDigest, "sha256:"), zeros: junk})

	for _, gz := range []bool{false, true} {
		p, _ := writeArchive(t, entries, gz)
		s := newStore(t)
		require.NoError(t, s.WriteImage(ctx, "other:v1", randomImage(t, 100, 1)))
		before, _ := storeFiles(t, s)
		_, err := loadFile(t, s, p)
		require.Error(t, err)
		after, _ := storeFiles(t, s)
		assert.Equal(t, keys(before), keys(after), "gzip %v", gz)
		rep, err := s.GC(ctx)
		require.NoError(t, err)
		assert.Zero(t, rep.Blobs, "the failed load left blobs nothing refers to")
	}
}

func keys(m map[string]int64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	require.NoError(t, err)
	return h
}
