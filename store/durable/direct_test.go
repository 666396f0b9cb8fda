package durable

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// createDirect makes a DirectWriter in a temp dir; the test fails (it does not skip) where
// the filesystem has no O_DIRECT, since the hub's fast path then goes unexercised.
func createDirect(t *testing.T) (*DirectWriter, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data")
	w, err := CreateDirect(p)
	require.NoError(t, err, "O_DIRECT on the test filesystem (%s)", os.TempDir())
	return w, p
}

// TestDirectSizes: whatever the size (empty, under one block, an unaligned tail, many
// buffers, past EarlySync), written by Write or ReadFrom in any pieces, the file holds
// exactly the bytes after Sync.
func TestDirectSizes(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 4096, directBuf - 1, directBuf, directBuf + 1, 3*directBuf + 4097, EarlySync + directBuf + 123} {
		b := random(n)
		for _, how := range []string{"write", "readfrom"} {
			w, p := createDirect(t)
			if how == "write" {
				for rest := b; len(rest) > 0; {
					k := min(len(rest), 32<<10+7)
					_, err := w.Write(rest[:k])
					require.NoError(t, err)
					rest = rest[k:]
				}
			} else {
				got, err := w.ReadFrom(iotest.HalfReader(bytes.NewReader(b)))
				require.NoError(t, err)
				assert.Equal(t, int64(n), got)
			}
			assert.Equal(t, int64(n), w.Size())
			require.NoError(t, w.Sync())
			require.NoError(t, w.Close())
			got, err := os.ReadFile(p)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(b, got), "%s of %d bytes", how, n)
		}
	}
}

// TestDirectExisting: a DirectWriter never writes over a file that is there.
func TestDirectExisting(t *testing.T) {
	p := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.WriteFile(p, []byte("keep"), 0o644))
	_, err := CreateDirect(p)
	require.ErrorIs(t, err, os.ErrExist)
	b, _ := os.ReadFile(p)
	assert.Equal(t, "keep", string(b))
}

// TestDirectReadError: a reader's error comes back from ReadFrom, and Close still ends
// the writing goroutine and closes the file.
func TestDirectReadError(t *testing.T) {
	w, _ := createDirect(t)
	boom := errors.New("connection reset")
	_, err := w.ReadFrom(io.MultiReader(bytes.NewReader(random(2*directBuf+5)), iotest.ErrReader(boom)))
	require.ErrorIs(t, err, boom)
	require.NoError(t, w.Close())
	_, err = unix.FcntlInt(w.f.Fd(), unix.F_GETFL, 0)
	assert.Error(t, err, "the file is closed")
}
