package save

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/testtool"
)

func TestPlaceFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "blob")
	require.NoError(t, os.WriteFile(src, []byte("content"), 0o644))

	// Same filesystem: a hard link.
	dst := filepath.Join(t.TempDir(), "a", "b", "data")
	require.NoError(t, placeFile(src, dst))
	s1, _ := os.Stat(src)
	s2, err := os.Stat(dst)
	require.NoError(t, err)
	assert.True(t, os.SameFile(s1, s2))
	require.NoError(t, placeFile(src, dst), "placing an existing file again")

	// Another filesystem (tmpfs): a copy.
	if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
		testtool.Missing(t, "no /dev/shm to test copying across filesystems")
	}
	other, err := os.MkdirTemp("/dev/shm", "save-test-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(other) })
	dst = filepath.Join(other, "x", "data")
	require.NoError(t, placeFile(src, dst))
	b, err := os.ReadFile(dst)
	require.NoError(t, err)
	assert.Equal(t, "content", string(b))
	entries, _ := os.ReadDir(filepath.Dir(dst))
	assert.Len(t, entries, 1, "temporary file left behind")
}
