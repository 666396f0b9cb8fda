package durable

import (
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// write sends b to w in 32 KiB pieces, as io.Copy does.
func write(t *testing.T, w *Writer, b []byte) {
	t.Helper()
	for len(b) > 0 {
		n := min(len(b), 32<<10)
		_, err := w.Write(b[:n])
		require.NoError(t, err)
		b = b[n:]
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestEarlySync: a long write is fdatasynced in the background as it goes, and after Sync
// the file holds every byte.
func TestEarlySync(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	require.NoError(t, err)
	defer f.Close()
	w := NewWriter(f, 0)
	b := random(3*EarlySync + 777)
	write(t, w, b)
	// the first starts at EarlySync; later ones only once the one before has ended
	assert.GreaterOrEqual(t, w.bg.at, int64(EarlySync), "no fdatasync started as data arrived")
	require.NoError(t, w.Sync())
	assert.Equal(t, int64(len(b)), w.Size())
	got, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	assert.Equal(t, sha256.Sum256(b), sha256.Sum256(got))
}

// TestNoEarlySyncs: with the journal taking care of durability, nothing is synced.
func TestNoEarlySyncs(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	require.NoError(t, err)
	defer f.Close()
	w := NewWriter(f, 0)
	w.NoEarlySyncs()
	write(t, w, random(EarlySync+WritebackChunk))
	assert.Nil(t, w.bg.done)
	require.NoError(t, w.Flush())
}

// TestAppend: a writer continuing a file (a resumed upload) counts from its offset and
// leaves what was there.
func TestAppend(t *testing.T) {
	p := filepath.Join(t.TempDir(), "data")
	first := random(5 << 20)
	require.NoError(t, os.WriteFile(p, first, 0o644))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	defer f.Close()
	w := NewWriter(f, int64(len(first)))
	rest := random(EarlySync + 3<<20)
	write(t, w, rest)
	require.NoError(t, w.Sync())
	assert.Equal(t, int64(len(first)+len(rest)), w.Size())
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, sha256.Sum256(append(first, rest...)), sha256.Sum256(got))
}
