package main

// End-to-end tests of sealos registry serve, passwd and gc with the real binary
// ($SEALOS_BIN, set by `make test`).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hubProc is a running `sealos registry serve`.
type hubProc struct {
	cmd    *exec.Cmd
	addr   string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
}

func (h *hubProc) log() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stderr.String()
}

func startHubProc(t *testing.T, args ...string) *hubProc {
	t.Helper()
	bin := sealosBin(t)
	h := &hubProc{done: make(chan struct{})}
	h.cmd = exec.Command(bin, append([]string{"registry", "serve"}, args...)...)
	pipe, err := h.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, h.cmd.Start())
	t.Cleanup(func() { _ = h.cmd.Process.Kill(); <-h.done })
	addrc := make(chan string, 1)
	go func() {
		defer close(h.done)
		re := regexp.MustCompile(`on https?://(\S+)`)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			h.mu.Lock()
			h.stderr.WriteString(sc.Text() + "\n")
			h.mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		close(addrc)
		_ = h.cmd.Wait()
	}()
	addr, ok := <-addrc
	require.True(t, ok, "registry serve exited without printing its address")
	h.addr = addr
	return h
}

// stop sends sig and waits for the process to exit.
func (h *hubProc) stop(sig os.Signal) {
	_ = h.cmd.Process.Signal(sig)
	<-h.done
}

func TestRegistryServePasswdGCEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "registry")
	pw := filepath.Join(t.TempDir(), "htpasswd")
	mustSealos(t, nil, "hunter2-pass\n", "registry", "passwd", "--htpasswd", pw, "admin", "--password-stdin")
	mustSealos(t, nil, "other\n", "registry", "passwd", "--htpasswd", pw, "bob", "--password-stdin")
	mustSealos(t, nil, "", "registry", "passwd", "--htpasswd", pw, "bob", "--delete")
	b, err := os.ReadFile(pw)
	require.NoError(t, err)
	assert.Regexp(t, `^admin:\$2[aby]\$`, string(b))
	assert.NotContains(t, string(b), "bob")

	h := startHubProc(t, "filesystem", dir, "--port", "0", "--address", "127.0.0.1", "--htpasswd", pw, "--access-log")
	res, err := http.Get("http://" + h.addr + "/v2/")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
	assert.Contains(t, res.Header.Get("WWW-Authenticate"), "Basic realm=")

	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: "hunter2-pass"})
	push := func(repo string) name.Reference {
		img, err := random.Image(4096, 2)
		require.NoError(t, err)
		ref, err := name.ParseReference(h.addr+"/"+repo, name.Insecure)
		require.NoError(t, err)
		require.NoError(t, remote.Write(ref, img, auth))
		return ref
	}
	keep := push("e2e/keep:v1")
	gone := push("e2e/gone:v1")
	desc, err := remote.Head(gone, auth)
	require.NoError(t, err)
	del, err := name.ParseReference(h.addr+"/e2e/gone@"+desc.Digest.String(), name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Delete(del, auth))

	// gc against the running hub: dry run, then for real
	out := mustSealos(t, nil, "", "registry", "gc", dir, "--keep-recent", "0", "--dry-run", "-o", "json")
	var dry struct {
		DeletedBlobs []string `json:"deletedBlobs"`
		DryRun       bool     `json:"dryRun"`
	}
	require.NoError(t, json.Unmarshal([]byte(out.stdout), &dry), out.stdout)
	assert.True(t, dry.DryRun)
	assert.Len(t, dry.DeletedBlobs, 4) // manifest, config and 2 layers of the deleted image
	out = mustSealos(t, nil, "", "registry", "gc", dir, "--keep-recent", "0")
	assert.Contains(t, out.stdout, "deleted 4 blobs")
	img, err := remote.Image(keep, auth)
	require.NoError(t, err)
	readLayers(t, img)
	// the deleted image can be pushed again at once
	push("e2e/gone:v2")

	// clean shutdown on SIGTERM
	h.stop(syscall.SIGTERM)
	assert.Equal(t, 0, h.cmd.ProcessState.ExitCode())
	log := h.log()
	assert.Contains(t, log, "registry stopped")
	assert.Contains(t, log, " admin PUT /v2/e2e/keep/manifests/v1 201 ")
	assert.NotContains(t, log, "hunter2-pass")
	assert.NotContains(t, log, "level=error")

	// read-only
	ro := startHubProc(t, "fs", dir, "-p", "0", "--address", "127.0.0.1", "--read-only")
	res, err = http.Post("http://"+ro.addr+"/v2/e2e/x/blobs/uploads/", "", nil)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	res, err = http.Get("http://" + ro.addr + "/v2/e2e/keep/tags/list")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	ro.stop(os.Interrupt)
	assert.Equal(t, 0, ro.cmd.ProcessState.ExitCode())
}

// TestRegistrySIGKILLEndToEnd kills the hub with SIGKILL in the middle of pushes; it
// restarts clean on the same directory and the re-push completes.
func TestRegistrySIGKILLEndToEnd(t *testing.T) {
	dir := t.TempDir()
	h := startHubProc(t, "fs", dir, "-p", "0", "--address", "127.0.0.1")
	// pushes in flight: four clients, the kill lands while they run
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, _ := random.Image(2<<20, 4)
			ref, _ := name.ParseReference(fmt.Sprintf("%s/kill/r%d:v1", h.addr, i), name.Insecure)
			_ = remote.Write(ref, img) // fails when the hub dies
		}()
	}
	// wait until some upload data reached the disk, then kill
	for i := 0; i < 2000; i++ {
		if n := countFiles(filepath.Join(dir, "docker")); n > 10 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.stop(syscall.SIGKILL)
	wg.Wait()

	h2 := startHubProc(t, "fs", dir, "-p", "0", "--address", "127.0.0.1")
	for i := 0; i < 4; i++ {
		img, err := random.Image(2<<20, 4)
		require.NoError(t, err)
		ref, err := name.ParseReference(fmt.Sprintf("%s/kill/r%d:v1", h2.addr, i), name.Insecure)
		require.NoError(t, err)
		require.NoError(t, remote.Write(ref, img))
		got, err := remote.Image(ref)
		require.NoError(t, err)
		want, _ := img.Digest()
		gd, err := got.Digest()
		require.NoError(t, err)
		assert.Equal(t, want, gd)
	}
	// everything the hub lists is complete
	out := mustSealos(t, nil, "", "registry", "gc", dir, "--keep-recent", "0", "--dry-run", "-o", "json")
	assert.True(t, strings.Contains(out.stdout, `"dryRun": true`), out.stdout)
	h2.stop(syscall.SIGTERM)
}

func countFiles(dir string) int {
	n := 0
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n++
		}
		return nil
	})
	return n
}
