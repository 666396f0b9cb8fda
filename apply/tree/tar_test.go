package tree

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTarUntarRoundTrip(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(src, "etc", "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "etc", "sub", "a.conf"), []byte("a"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(src, "run.sh"), []byte("echo hi"), 0o755))
	require.NoError(t, os.Symlink("etc/sub/a.conf", filepath.Join(src, "link")))

	var buf bytes.Buffer
	require.NoError(t, Tar(&buf, src))
	dst := t.TempDir()
	require.NoError(t, Untar(&buf, dst))

	b, err := os.ReadFile(filepath.Join(dst, "etc", "sub", "a.conf"))
	require.NoError(t, err)
	assert.Equal(t, "a", string(b))
	fi, err := os.Stat(filepath.Join(dst, "run.sh"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	target, err := os.Readlink(filepath.Join(dst, "link"))
	require.NoError(t, err)
	assert.Equal(t, "etc/sub/a.conf", target)
}
