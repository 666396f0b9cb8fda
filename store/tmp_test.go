package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/procowner"
)

// envStuckWriter makes the test binary a writer that stores part of a blob and then
// hangs, so that a test can kill it as a killed pull would be.
const envStuckWriter = "SEALOS_STORE_TEST_STUCK_WRITER"

// stuckWriterBytes is how much a stuck writer writes before it hangs.
const stuckWriterBytes = 8 << 20

// stuckWriter writes stuckWriterBytes of a blob into the store in dir, prints "ready" and
// waits to be killed.
func stuckWriter(dir string) {
	s, err := OpenDir(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stuck writer:", err)
		os.Exit(1)
	}
	want := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	_, _, err = s.WriteBlob(context.Background(), want, 1<<30, &hangingReader{left: stuckWriterBytes})
	fmt.Fprintln(os.Stderr, "stuck writer returned:", err)
	os.Exit(1)
}

// hangingReader gives left zero bytes, then says "ready" on stdout and blocks forever.
type hangingReader struct{ left int }

func (r *hangingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		fmt.Println("ready")
		select {}
	}
	n := min(len(p), r.left, 64<<10)
	clear(p[:n])
	r.left -= n
	return n, nil
}

// startStuckWriters starts n writer processes on the store in dir and waits until each
// has written its partial blob.
func startStuckWriters(t *testing.T, dir string, n int) []*exec.Cmd {
	t.Helper()
	var cmds []*exec.Cmd
	for range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envStuckWriter+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "ready\n", line)
		cmds = append(cmds, cmd)
	}
	return cmds
}

func killAll(t *testing.T, cmds []*exec.Cmd) {
	t.Helper()
	for _, c := range cmds {
		require.NoError(t, c.Process.Signal(syscall.SIGKILL))
		_ = c.Wait()
	}
}

// temps counts the temporary files in the store and their bytes.
func temps(t *testing.T, dir string) (files int, bytes int64) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, ".sealos", "tmp"))
	require.NoError(t, err)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			files++
			bytes += fi.Size()
		}
	}
	return files, bytes
}

// A killed writer's temporary files are removed by the next Open; a live writer's are
// not, however old they are.
func TestOpenSweepsTempFilesOfKilledWriters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	_, err := OpenDir(dir)
	require.NoError(t, err)
	const n = 3
	cmds := startStuckWriters(t, dir, n)

	_, err = OpenDir(dir)
	require.NoError(t, err)
	files, bytes := temps(t, dir)
	assert.Equal(t, n, files, "the files of live writers stay")
	assert.Equal(t, int64(n*stuckWriterBytes), bytes)

	killAll(t, cmds)
	files, bytes = temps(t, dir)
	t.Logf("after %d killed writers: %d temporary files, %d bytes", n, files, bytes)
	require.Equal(t, n, files)

	_, err = OpenDir(dir)
	require.NoError(t, err)
	files, bytes = temps(t, dir)
	t.Logf("after Open: %d temporary files, %d bytes", files, bytes)
	assert.Zero(t, files)
}

// rmi sweeps them too, in a process that opened the store before the writers died.
func TestRemoveSweepsTempFilesOfKilledWriters(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	require.NoError(t, s.WriteImage(ctx, "app:v1", randomImage(t, 100, 1)))
	cmds := startStuckWriters(t, s.Dir(), 2)
	killAll(t, cmds)
	files, _ := temps(t, s.Dir())
	require.Equal(t, 2, files)
	require.NoError(t, s.Remove(ctx, "app:v1"))
	files, _ = temps(t, s.Dir())
	assert.Zero(t, files)
}

// A temporary file whose owner is this process is never swept, and one named for a
// process that does not exist is, however recent.
func TestSweepByOwner(t *testing.T) {
	s := newStore(t)
	f, err := createOwnedTemp(s.path(privateDir, tmpDir), "blob")
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, f.Close()) // not locked any more: ownership by name alone
	tag := procowner.Tag()
	require.NotEmpty(t, tag)
	pid, _, _ := strings.Cut(tag, "_")
	dead := filepath.Join(s.path(privateDir, tmpDir), "blob-o"+strings.Replace(tag, pid, "999999999", 1)+"-1")
	require.NoError(t, os.WriteFile(dead, []byte("x"), 0o644))
	_, err = OpenDir(s.Dir())
	require.NoError(t, err)
	assert.FileExists(t, f.Name())
	assert.NoFileExists(t, dead)
}
