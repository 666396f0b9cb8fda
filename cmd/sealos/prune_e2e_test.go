package main

import (
	"crypto/rand"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/testtool"
)

// diskBytes is what a tree takes on disk, each hard-linked file once (what du reports).
func diskBytes(t *testing.T, dir string) int64 {
	t.Helper()
	seen := map[uint64]bool{}
	var n int64
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if ino := inode(fi); ino != 0 {
			if seen[ino] {
				return nil
			}
			seen[ino] = true
		}
		n += fi.Size()
		return nil
	}))
	return n
}

// rmi says what it frees and what the build cache still holds; prune frees that, and the
// bytes printed are the bytes that left the disk.
func TestRmiAndPruneAccounting(t *testing.T) {
	if os.Geteuid() != 0 {
		testtool.Missing(t, "builds run on the embedded BuildKit, which needs root (CI runs as root)")
	}
	root, ctx := t.TempDir(), t.TempDir()
	blob := make([]byte, 16<<20) // incompressible, like the image blobs under registry/
	_, err := rand.Read(blob)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "data"), blob, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "Kubefile"), []byte("FROM scratch\nCOPY data /data\n"), 0o644))
	env := []string{"BUILDKIT_HOST="}
	empty := diskBytes(t, root)
	mustSealos(t, env, "", "--root", root, "build", "-q", "-t", "prune/me:v1", ctx)
	built := diskBytes(t, root)
	require.Greater(t, built-empty, int64(16<<20), "the layer is on disk")

	r := mustSealos(t, env, "", "--root", root, "rmi", "prune/me:v1")
	assert.Contains(t, r.stderr, "stay on disk in the build cache until 'sealos prune'", "rmi does not claim what it did not free")
	afterRmi := diskBytes(t, root)
	assert.Greater(t, afterRmi, int64(16<<20), "the build cache still holds the layer")

	var res struct {
		BuildCache struct{ Records, Bytes int64 }
		Total      int64
	}
	r = mustSealos(t, env, "", "--root", root, "prune", "--all", "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	assert.Positive(t, res.BuildCache.Records)
	after := diskBytes(t, root)
	freed := afterRmi - after
	assert.Greater(t, freed, int64(16<<20), "the layer left the disk")
	// BuildKit counts a record's snapshot and blob; within a few MiB of its own metadata,
	// what it printed is what left.
	assert.InDelta(t, float64(freed), float64(res.Total), float64(4<<20), "printed %d, freed %d", res.Total, freed)
	assert.Less(t, after-empty, int64(8<<20), "back to about the empty size")

	// builder prune and the flags
	mustSealos(t, env, "", "--root", root, "builder", "prune", "--force", "--keep-storage", "1GB", "--filter", "until=1h")
	assert.Contains(t, sealos(t, env, "", "--root", root, "prune", "--filter", "label=x").stderr, "only until=DURATION")
	assert.Contains(t, sealos(t, env, "", "--root", root, "prune", "--keep-storage", "lots").stderr, "want a size")
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
