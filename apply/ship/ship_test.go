package ship_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/apply/applytest"
	"github.com/cluster-image/sealos/apply/ship"
	"github.com/cluster-image/sealos/apply/transport"
	"github.com/cluster-image/sealos/apply/tree"
)

func write(t *testing.T, dir, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), mode))
}

func targets(t *testing.T, dir string, hosts ...string) []ship.Target {
	tr, err := tree.New(dir)
	require.NoError(t, err)
	var out []ship.Target
	for _, h := range hosts {
		out = append(out, ship.Target{Host: h, Tree: tr})
	}
	return out
}

func TestShip(t *testing.T) {
	set := applytest.StartNodes(t, 2, 5)
	ctx := context.Background()
	pool := transport.NewPool(transport.SSHConfig{KeyFile: set.Key})
	defer pool.Close()
	const dest = "/var/lib/sealos/data/t/rootfs"

	src := t.TempDir()
	write(t, src, "bin/tool", "#!/bin/sh\necho tool\n", 0o755)
	write(t, src, "etc/a.conf", "a=1\n", 0o644)
	write(t, src, "etc/gone.conf", "bye\n", 0o644)
	write(t, src, "old/dir/file", "x", 0o600)
	require.NoError(t, os.Symlink("tool", filepath.Join(src, "bin", "link")))

	for _, comp := range []string{ship.CompressAuto, ship.CompressGzip, ship.CompressNone} {
		t.Run("first/"+comp, func(t *testing.T) {
			res, err := ship.Ship(ctx, pool, dest, targets(t, src, set.IPs...), ship.Options{Compression: comp, Force: true})
			require.NoError(t, err)
			require.Len(t, res, 2)
			for i, r := range res {
				assert.False(t, r.Unchanged)
				assert.Equal(t, 4, r.Files)
				b, err := os.ReadFile(set.Path(i, dest+"/bin/tool"))
				require.NoError(t, err)
				assert.Equal(t, "#!/bin/sh\necho tool\n", string(b))
				st, _ := os.Stat(set.Path(i, dest+"/bin/tool"))
				assert.Equal(t, os.FileMode(0o755), st.Mode().Perm())
				l, _ := os.Readlink(set.Path(i, dest+"/bin/link"))
				assert.Equal(t, "tool", l)
			}
		})
	}

	t.Run("unchanged", func(t *testing.T) {
		var p ship.Progress
		res, err := ship.Ship(ctx, pool, dest, targets(t, src, set.IPs...), ship.Options{Progress: &p})
		require.NoError(t, err)
		for _, r := range res {
			assert.True(t, r.Unchanged)
		}
		assert.Zero(t, p.Wire.Load())
		assert.Zero(t, p.Files.Load())
	})

	t.Run("diff", func(t *testing.T) {
		write(t, src, "etc/a.conf", "a=2\n", 0o644)
		write(t, src, "etc/new.conf", "new\n", 0o640)
		require.NoError(t, os.Remove(filepath.Join(src, "etc/gone.conf")))
		require.NoError(t, os.RemoveAll(filepath.Join(src, "old")))
		var p ship.Progress
		res, err := ship.Ship(ctx, pool, dest, targets(t, src, set.IPs...), ship.Options{Progress: &p})
		require.NoError(t, err)
		for i, r := range res {
			assert.Equal(t, 2, r.Files, "only the changed and the new file")
			assert.Equal(t, 2, r.Removed, "etc/gone.conf and old/")
			b, _ := os.ReadFile(set.Path(i, dest+"/etc/a.conf"))
			assert.Equal(t, "a=2\n", string(b))
			_, err := os.Stat(set.Path(i, dest+"/etc/gone.conf"))
			assert.True(t, os.IsNotExist(err))
			_, err = os.Stat(set.Path(i, dest+"/old"))
			assert.True(t, os.IsNotExist(err))
			b, _ = os.ReadFile(set.Path(i, dest+"/bin/tool"))
			assert.Equal(t, "#!/bin/sh\necho tool\n", string(b), "unchanged files are kept")
			// One generation and its manifest, nothing else.
			ents, _ := os.ReadDir(filepath.Dir(set.Path(i, dest)))
			assert.Len(t, ents, 3, "%v", ents)
		}
		assert.Equal(t, int64(2), p.Files.Load(), "hosts needing the same bytes share one stream")
	})

	t.Run("cut connection", func(t *testing.T) {
		big := make([]byte, 4<<20)
		for i := 0; i < 8; i++ {
			_, _ = rand.Read(big)
			write(t, src, filepath.Join("big", string(rune('a'+i))), string(big), 0o644)
		}
		var once sync.Once
		_, err := ship.Ship(ctx, pool, dest, targets(t, src, set.IPs...), ship.Options{
			OnFile: func(string, int64) { once.Do(func() { require.NoError(t, set.Kill(1)) }) },
		})
		require.Error(t, err)
		assert.Contains(t, err.Error(), set.IPs[1])
		assert.NotContains(t, err.Error(), set.IPs[0]+":")
		_, statErr := os.Stat(set.Path(0, dest+"/big/h"))
		assert.NoError(t, statErr, "the other host completed")
		_, statErr = os.Stat(set.Path(1, dest+"/big"))
		assert.True(t, os.IsNotExist(statErr), "the cut host still has the old tree")
		b, _ := os.ReadFile(set.Path(1, dest+"/etc/a.conf"))
		assert.Equal(t, "a=2\n", string(b), "and it is intact")

		require.NoError(t, set.Restart(1))
		pool.Drop(set.IPs[1])
		res, err := ship.Ship(ctx, pool, dest, targets(t, src, set.IPs...), ship.Options{})
		require.NoError(t, err)
		assert.True(t, res[0].Unchanged)
		assert.Equal(t, 8, res[1].Files)
		ents, _ := os.ReadDir(filepath.Dir(set.Path(1, dest)))
		assert.Len(t, ents, 3, "the stale stage is gone: %v", ents)
	})
}

func TestShipLocal(t *testing.T) {
	ctx := context.Background()
	pool := transport.NewPool(transport.SSHConfig{})
	src := t.TempDir()
	write(t, src, "f", "local", 0o644)
	dest := filepath.Join(t.TempDir(), "data", "rootfs")
	res, err := ship.Ship(ctx, pool, dest, targets(t, src, "127.0.0.1"), ship.Options{})
	require.NoError(t, err)
	require.Len(t, res, 1)
	b, err := os.ReadFile(filepath.Join(dest, "f"))
	require.NoError(t, err)
	assert.Equal(t, "local", string(b))
}

func TestShipUnreachableHost(t *testing.T) {
	ctx := context.Background()
	pool := transport.NewPool(transport.SSHConfig{Password: "x", DialTimeout: 2 * time.Second})
	src := t.TempDir()
	write(t, src, "f", "x", 0o644)
	local := filepath.Join(t.TempDir(), "rootfs")
	res, err := ship.Ship(ctx, pool, local, targets(t, src, "127.0.0.1", "127.0.0.254:1"), ship.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "127.0.0.254:1")
	require.Len(t, res, 1, "the reachable host is done")
	assert.Equal(t, "127.0.0.1", res[0].Host)
}
