package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/procowner"
)

// openSession starts an upload session on h and sends one chunk; it returns the
// session's id and where to go on.
func openSession(t *testing.T, h *hub, repo string, chunk []byte) (id, loc string) {
	t.Helper()
	r := h.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	r = h.do("PATCH", h.location(r), map[string]string{"Content-Type": "application/octet-stream"}, chunk)
	require.Equal(t, http.StatusAccepted, r.status)
	return path.Base(locPath(t, r)), h.location(r)
}

func sessionDir(dir, repo, id string) string {
	return filepath.Join(dir, "docker/registry/v2/repositories", repo, uploadsDir, id)
}

// liveOwner is the owner name of a process that lives for the test.
func liveOwner(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	start, ok := procowner.ProcStart(cmd.Process.Pid)
	require.True(t, ok)
	return fmt.Sprintf("%d_%d_%s", cmd.Process.Pid, start, procowner.BootID()[:8])
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// TestKilledHubLeftoversSwept: what a SIGKILLed hub leaves (an upload session with data,
// a half-written staged blob) goes when the next hub starts on the directory, by owner
// and not by age: a live hub's session on the same directory stays and completes. What
// names no owner goes only when the starting hub is alone; temporary files of writes go
// with every collection.
func TestKilledHubLeftoversSwept(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Fatalf("owners are read from /proc: %v", err)
	}
	dir := t.TempDir()
	cmdA, uA := startHubProcess(t, dir)
	hA := &hub{t: t, url: uA}
	idA, _ := openSession(t, hA, "a", randomBytes(300000))
	owner, err := os.ReadFile(filepath.Join(sessionDir(dir, "a", idA), sessionOwnerFile))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(owner), strconv.Itoa(cmdA.Process.Pid)+"_"), "owner %q of a session of hub pid %d", owner, cmdA.Process.Pid)
	big := randomBytes(4 << 20)
	conn, uuid := startPartialUpload(t, hA, "a", big, 3<<20)
	defer conn.Close()
	waitUploadData(t, dir, "a", uuid, 1<<20)

	cmdB, uB := startHubProcess(t, dir)
	hB := &hub{t: t, url: uB}
	chunkB := randomBytes(200000)
	idB, locB := openSession(t, hB, "b", chunkB)

	require.NoError(t, cmdA.Process.Signal(syscall.SIGKILL))
	_ = cmdA.Wait()
	staging := filepath.Join(dir, stagingDir)
	require.Len(t, dirNames(t, staging), 1, "hub A's staged blob")

	// what names no owner or a live one, and a write's temporary file
	live := "blob-o" + liveOwner(t) + "-0123"
	for _, n := range []string{"blob-legacy", live} {
		require.NoError(t, os.WriteFile(filepath.Join(staging, n), []byte("partial"), 0o644))
		old := time.Now().Add(-48 * time.Hour)
		require.NoError(t, os.Chtimes(filepath.Join(staging, n), old, old))
	}
	unowned := sessionDir(dir, "b", "0f9c2d1e-0000-4000-8000-000000000001")
	require.NoError(t, os.MkdirAll(unowned, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(unowned, "startedat"), []byte(time.Now().Format(time.RFC3339)), 0o644))
	linkDir := filepath.Join(dir, "docker/registry/v2/repositories/b/_layers/sha256", strings.Repeat("ab", 32))
	require.NoError(t, os.MkdirAll(linkDir, 0o755))
	temp := filepath.Join(linkDir, "link.12345678-1234-4234-8234-123456789abc.tmp")
	require.NoError(t, os.WriteFile(temp, []byte("sha256:"), 0o644))

	// hub C starts while B lives: A's leftovers go, nothing of B's or of no owner
	c, err := New(Config{RootDirectory: dir})
	require.NoError(t, err)
	assert.NoDirExists(t, sessionDir(dir, "a", idA), "a killed hub's session")
	assert.Equal(t, []string{"blob-legacy", live}, dirNames(t, staging), "a killed hub's staged blob goes, the others stay")
	assert.DirExists(t, sessionDir(dir, "b", idB), "a live hub's session")
	assert.DirExists(t, unowned, "a session without owner while another hub lives")
	assert.FileExists(t, temp)

	// B's session completes through B
	r := hB.do("PUT", withQuery(locB, "digest="+digest.FromBytes(chunkB).String()), nil, nil)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)

	// a collection: every staged blob and temporary file (writes are stopped), counted
	res, err := c.CollectGarbage(context.Background(), GCOptions{KeepRecent: time.Hour, DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, 3, res.RemovedTemps)
	assert.FileExists(t, temp)
	res, err = c.CollectGarbage(context.Background(), GCOptions{KeepRecent: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, 3, res.RemovedTemps)
	assert.Empty(t, dirNames(t, staging))
	assert.NoFileExists(t, temp)
	assert.DirExists(t, unowned, "sessions go by owner in a collection too")

	// B killed with a session open, C closed: the next hub is alone and removes both
	// B's session and the one without owner
	idB2, _ := openSession(t, hB, "b", randomBytes(1000))
	require.NoError(t, cmdB.Process.Signal(syscall.SIGKILL))
	_ = cmdB.Wait()
	require.NoError(t, c.Close())
	d, err := New(Config{RootDirectory: dir})
	require.NoError(t, err)
	defer d.Close()
	assert.NoDirExists(t, sessionDir(dir, "b", idB2))
	assert.NoDirExists(t, unowned)
	assert.Len(t, dirNames(t, filepath.Join(dir, hubsDir)), 1, "the lock files of dead hubs are gone; D's stays")
}
