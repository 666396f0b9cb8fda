package server

import (
	"bufio"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain doubles as a hub process for the crash tests: with SEALOS_TEST_HUB_DIR set,
// the test binary serves that directory on a loopback port, prints the address and
// serves until killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("SEALOS_TEST_HUB_DIR"); dir != "" {
		srv, err := New(Config{RootDirectory: dir})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(ln.Addr().String())
		_ = http.Serve(ln, srv.Handler())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startHubProcess runs a hub on dir in a child process and returns its URL.
func startHubProcess(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SEALOS_TEST_HUB_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	return cmd, "http://" + strings.TrimSpace(line)
}

// startPartialUpload opens an upload session and sends part of a blob of the declared
// size over a raw connection, leaving the request unfinished; it returns the connection.
func startPartialUpload(t *testing.T, h *hub, repo string, blob []byte, send int) (net.Conn, string) {
	t.Helper()
	r := h.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	loc, err := url.Parse(h.location(r))
	require.NoError(t, err)
	q := loc.Query()
	q.Set("digest", digest.FromBytes(blob).String())
	u, _ := url.Parse(h.url)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "PUT %s?%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
		loc.Path, q.Encode(), u.Host, len(blob))
	require.NoError(t, err)
	_, err = conn.Write(blob[:send])
	require.NoError(t, err)
	return conn, path.Base(loc.Path)
}

// waitUploadData waits (bounded) until the hub has written n bytes of an upload: into
// the session's data file (distribution's path), or into a file it stages a one-pass
// upload in.
func waitUploadData(t *testing.T, dir, repo, uuid string, n int64) {
	t.Helper()
	written := func() bool {
		if fi, err := os.Stat(filepath.Join(dir, "docker/registry/v2/repositories", repo, "_uploads", uuid, "data")); err == nil && fi.Size() >= n {
			return true
		}
		staged, _ := os.ReadDir(filepath.Join(dir, stagingDir))
		for _, e := range staged {
			if fi, err := e.Info(); err == nil && fi.Size() >= n {
				return true
			}
		}
		return false
	}
	require.Eventually(t, written, 10*time.Second, 5*time.Millisecond, "the hub never got %d bytes of the upload", n)
}

// TestClientDisconnectMidUpload: a client that goes away mid-blob leaves nothing visible,
// and the same blob can be pushed afterwards.
func TestClientDisconnectMidUpload(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	blob := randomBytes(1 << 20)
	d := digest.FromBytes(blob)
	conn, _ := startPartialUpload(t, h, "cut", blob, len(blob)/2)
	require.NoError(t, conn.Close())

	r := h.do("HEAD", "/v2/cut/blobs/"+d.String(), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	r = h.do("GET", "/v2/cut/blobs/"+d.String(), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "BLOB_UNKNOWN", r.code())

	assert.Equal(t, d, h.pushBlob("cut", blob))
	r = h.do("GET", "/v2/cut/blobs/"+d.String(), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, d, digest.FromBytes(r.body))

	// a truncated monolithic upload whose body ends early is refused, not stored
	b2 := randomBytes(4096)
	r = h.do("POST", "/v2/cut/blobs/uploads/", nil, nil)
	loc := h.location(r)
	r = h.do("PUT", withQuery(loc, "digest="+digest.FromBytes(b2).String()), map[string]string{"Content-Type": "application/octet-stream"}, b2[:1000])
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "DIGEST_INVALID", r.code())
	assert.Equal(t, http.StatusNotFound, h.do("HEAD", "/v2/cut/blobs/"+digest.FromBytes(b2).String(), nil, nil).status)
}

// TestSIGKILLMidPush kills a hub process in the middle of a push; restarted on the same
// directory it serves what was complete, shows nothing of the cut blob, and a re-push
// completes.
func TestSIGKILLMidPush(t *testing.T) {
	dir := t.TempDir()
	cmd, u := startHubProcess(t, dir)
	h := &hub{t: t, url: u}

	// a complete image before the crash
	m, mb := h.image("before", 2)
	require.Equal(t, http.StatusCreated, h.putManifest("before", "v1", mb, v1.MediaTypeImageManifest).status)

	// a push in flight: a chunked session with one chunk in, and a PUT half sent
	r := h.do("POST", "/v2/crash/blobs/uploads/", nil, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	r = h.do("PATCH", h.location(r), map[string]string{"Content-Type": "application/octet-stream"}, randomBytes(300000))
	require.Equal(t, http.StatusAccepted, r.status)
	// and two monolithic PUTs half sent: one staged through the page cache, one with
	// O_DIRECT (from directMin)
	blob := randomBytes(4 << 20)
	conn, uuid := startPartialUpload(t, h, "crash", blob, 3<<20)
	defer conn.Close()
	waitUploadData(t, dir, "crash", uuid, 1<<20) // the hub is inside the PUT
	big := randomBytes(directMin + 4<<20)
	conn2, uuid2 := startPartialUpload(t, h, "crash", big, directMin)
	defer conn2.Close()
	waitUploadData(t, dir, "crash", uuid2, directMin-directMin/4)

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	_, u2 := startHubProcess(t, dir)
	h2 := &hub{t: t, url: u2}
	assert.Equal(t, http.StatusNotFound, h2.do("HEAD", "/v2/crash/blobs/"+digest.FromBytes(blob).String(), nil, nil).status)
	assert.Equal(t, http.StatusNotFound, h2.do("HEAD", "/v2/crash/blobs/"+digest.FromBytes(big).String(), nil, nil).status)
	r = h2.do("GET", "/v2/before/manifests/v1", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, mb, r.body)
	for _, l := range m.Layers {
		r := h2.do("GET", "/v2/before/blobs/"+l.Digest.String(), nil, nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, l.Digest, digest.FromBytes(r.body))
	}

	// the re-push completes: the cut blobs, then a whole image with a real client
	assert.Equal(t, digest.FromBytes(blob), h2.pushBlob("crash", blob))
	assert.Equal(t, digest.FromBytes(big), h2.pushBlob("crash", big))
	r = h2.do("GET", "/v2/crash/blobs/"+digest.FromBytes(big).String(), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, digest.FromBytes(big), digest.FromBytes(r.body))
	img, err := random.Image(100000, 3)
	require.NoError(t, err)
	ref, err := name.ParseReference(strings.TrimPrefix(u2, "http://")+"/crash:v1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img))
	got, err := remote.Image(ref)
	require.NoError(t, err)
	want, _ := img.Digest()
	gd, err := got.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, gd)
}

// TestSIGKILLLoop kills a hub process at random moments of pushes from 4 clients at once,
// 20 times over on one directory, restarting it each time: every image acknowledged
// before a kill pulls with the content of its digests after the restart, and all of them
// at the end; and what the killed hubs left is gone once the last one starts.
func TestSIGKILLLoop(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	dir := t.TempDir()
	var acked []string // refs
	pushed, kills, fresh := 0, 0, 0
	for round := 0; round < rounds; round++ {
		cmd, u := startHubProcess(t, dir)
		host := strings.TrimPrefix(u, "http://")
		for _, r := range acked[fresh:] { // what was acknowledged before the kill, whole
			ref, err := name.ParseReference(host+"/"+r, name.Insecure)
			require.NoError(t, err)
			img, err := remote.Image(ref)
			require.NoError(t, err, "acknowledged %s, round %d", r, round)
			require.NoError(t, validate.Image(img), "acknowledged %s, round %d", r, round)
		}
		fresh = len(acked)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for c := 0; c < 4; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					img, err := random.Image(int64(64<<10*(1+i%8)), 3)
					if err != nil {
						return
					}
					r := fmt.Sprintf("kill/c%d:r%d-%d", c, round, i)
					ref, _ := name.ParseReference(host+"/"+r, name.Insecure)
					mu.Lock()
					pushed++
					mu.Unlock()
					if remote.Write(ref, img) != nil {
						return // the hub is gone
					}
					mu.Lock()
					acked = append(acked, r)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(50+mrand.IntN(250)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		kills++
		wg.Wait()
	}
	srv, err := New(Config{RootDirectory: dir})
	require.NoError(t, err)
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	h := &hub{t: t, url: ts.URL}
	lost := 0
	for _, r := range acked {
		repo, tag, _ := strings.Cut(r, ":")
		if miss := pullComplete(h, repo, tag); miss != "" {
			lost++
			t.Log("acknowledged and lost:", miss)
		}
	}
	staged, _ := os.ReadDir(filepath.Join(dir, stagingDir))
	var sessions int
	_ = filepath.WalkDir(filepath.Join(dir, "docker/registry/v2/repositories"), func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() && filepath.Base(filepath.Dir(p)) == uploadsDir {
			sessions++
		}
		return nil
	})
	t.Logf("%d kills during %d pushes: %d acknowledged, %d lost; left after the last start: %d staged blobs, %d upload sessions",
		kills, pushed, len(acked), lost, len(staged), sessions)
	assert.Zero(t, lost)
	assert.Greater(t, len(acked), rounds, "pushes completed between kills")
	assert.Zero(t, len(staged))
	assert.Zero(t, sessions)
}
