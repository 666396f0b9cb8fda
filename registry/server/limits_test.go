package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/testtool"
)

// TestErrorBodyBounded: errors quote at most a bounded prefix of what the client sent,
// ours and distribution's alike.
func TestErrorBodyBounded(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	long := strings.Repeat("a", 40<<10)
	d := h.pushBlob("small", []byte("x"))
	for _, c := range []struct{ method, path string }{
		{"GET", "/v2/" + long + "/tags/list"},          // NAME_INVALID (ours)
		{"GET", "/v2/x/" + long + "/manifests/latest"}, // NAME_INVALID, nested
		{"GET", "/v2/small/manifests/" + long},         // MANIFEST_UNKNOWN (tag)
		{"PUT", "/v2/small/manifests/" + long},         // TAG_INVALID
		{"GET", "/v2/small/manifests/sha256:" + long},  // DIGEST_INVALID
		{"POST", "/v2/small/blobs/uploads/?digest=sha256:" + long},
		{"GET", "/v2/small/blobs/uploads/" + long},
		{"GET", "/v2/small/blobs/sha256:" + long},
		{"DELETE", "/v2/small/blobs/" + d.String() + long},
	} {
		r := h.do(c.method, c.path, nil, nil)
		assert.GreaterOrEqual(t, r.status, 400, c.method+" "+c.path[:40])
		assert.Less(t, len(r.body), 2048, "%s %s...: %d bytes: %.300s", c.method, c.path[:40], len(r.body), r.body)
		if len(r.body) > 0 && strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			assert.NotEmpty(t, r.code(), "%s", r.body)
		}
		if n := r.header.Get("Content-Length"); n != "" {
			assert.Equal(t, strconv.Itoa(len(r.body)), n)
		}
	}
}

func TestBoundErrorBody(t *testing.T) {
	long := strings.Repeat("é", 300)
	b := boundErrorBody([]byte(`{"errors":[{"code":"NAME_INVALID","message":"x","detail":{"name":"`+long+`","n":[1,"/srv/reg/docker/x: no space"]}}]}`), "/srv/reg")
	s := string(b)
	assert.Contains(t, s, `"...`[1:])
	assert.NotContains(t, s, "/srv/reg")
	assert.Less(t, len(b), 400)
	assert.Equal(t, "abc", bound("abc", ""))
}

// TestConnsPerAddress: connections of one address over the limit are closed at once;
// another address is not affected.
func TestConnsPerAddress(t *testing.T) {
	srv, err := New(Config{InMemory: true})
	require.NoError(t, err)
	defer srv.Close()
	addr, _, _ := serveOnLoopback(t, srv, ServeOptions{Limits: Limits{MaxConnsPerAddr: 8}})
	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	var conns []net.Conn
	for i := 0; i < 12; i++ {
		conns = append(conns, dial("127.0.0.2"))
		time.Sleep(5 * time.Millisecond) // accepted in order
	}
	closed := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	assert.Equal(t, 4, closed)
	// the first 8 serve requests; another address does too
	for _, c := range append(conns[:1], dial("127.0.0.3")) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := fmt.Fprintf(c, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusOK, res.StatusCode)
	}
}

// TestSlowBodyCut: a body that trickles at 1 byte/s is cut within the window, and the
// upload's data is removed; a fast body of the same request kind is not.
func TestSlowBodyCut(t *testing.T) {
	dir := t.TempDir()
	srv, err := New(Config{RootDirectory: dir})
	require.NoError(t, err)
	defer srv.Close()
	window := 2 * time.Second
	addr, _, _ := serveOnLoopback(t, srv, ServeOptions{Limits: Limits{MinBodyRate: 1024, BodyRateWindow: window}})
	h := &hub{t: t, url: "http://" + addr}

	r := h.do("POST", "/v2/slow/blobs/uploads/", nil, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	loc, err := url.Parse(h.location(r))
	require.NoError(t, err)
	uuid := filepath.Base(loc.Path)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n", loc.RequestURI())
	require.NoError(t, err)
	start := time.Now()
	cut := make(chan time.Duration, 1)
	go func() { // the server's answer, or its close
		_, _ = io.Copy(io.Discard, c)
		cut <- time.Since(start)
	}()
	var took time.Duration
	for i := 0; i < 30 && took == 0; i++ { // 1 byte/s, at most 30 s
		if _, err := c.Write([]byte("1\r\nx\r\n")); err != nil {
			break
		}
		select {
		case took = <-cut:
		case <-time.After(time.Second):
		}
	}
	if took == 0 {
		select {
		case took = <-cut:
		case <-time.After(5 * time.Second):
		}
	}
	require.NotZero(t, took, "a 1 byte/s body was not cut in 30 s")
	t.Logf("1 byte/s body cut after %s (window %s)", took.Round(time.Millisecond), window)
	assert.Less(t, took, 3*window)
	_, err = os.Stat(filepath.Join(dir, "docker/registry/v2/repositories/slow/_uploads", uuid))
	assert.True(t, os.IsNotExist(err), "the cut upload's data stayed: %v", err)

	// a fast upload through the same server is whole
	blob := randomBytes(16 << 20)
	d := h.pushBlob("slow", blob)
	assert.Equal(t, http.StatusOK, h.do("HEAD", "/v2/slow/blobs/"+d.String(), nil, nil).status)
}

// TestMaxUploadSize: an upload over the limit is refused (413), with or without a
// Content-Length and over several chunks, and its data is removed.
func TestMaxUploadSize(t *testing.T) {
	dir := t.TempDir()
	srv, err := New(Config{RootDirectory: dir})
	require.NoError(t, err)
	defer srv.Close()
	addr, _, _ := serveOnLoopback(t, srv, ServeOptions{Limits: Limits{MaxUploadSize: 1 << 20}})
	h := &hub{t: t, url: "http://" + addr}
	big := randomBytes(1<<20 + 1)

	r := h.do("POST", "/v2/big/blobs/uploads/?digest="+digest.FromBytes(big).String(), nil, big)
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.status, string(r.body))

	// chunks: 600 KiB, then 600 KiB without a length
	r = h.do("POST", "/v2/big/blobs/uploads/", nil, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	u := h.location(r)
	r = h.do("PATCH", u, map[string]string{"Content-Type": "application/octet-stream"}, big[:600<<10])
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	req, err := http.NewRequest("PATCH", h.location(r), io.MultiReader(strings.NewReader(string(big[600<<10:]))))
	require.NoError(t, err)
	req.ContentLength = -1
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode, string(b))
	assert.Zero(t, uploadBytes(t, dir), "data of the refused upload stayed")

	// at the limit is fine
	h.pushBlob("big", big[:1<<20])
}

// uploadBytes is how many bytes upload sessions and staged uploads hold under dir.
func uploadBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && (strings.Contains(p, "/_uploads/") || strings.Contains(p, "/"+stagingDir+"/")) {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// TestDiskFull: on a real full disk (a 64 MiB tmpfs) an upload, whichever way it is sent,
// gets 507 with a body that names no server path, leaves no data behind, and the next
// upload works; with a reserve the hub refuses before the disk is full.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		testtool.Missing(t, "needs root to mount a tmpfs")
	}
	for _, c := range []struct {
		name    string
		reserve int64
	}{{"reserve", 8 << 20}, {"no-reserve", -1}} {
		t.Run(c.name, func(t *testing.T) {
			mnt := t.TempDir()
			require.NoError(t, syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64m"))
			t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
			dir := filepath.Join(mnt, "hub")
			srv, err := New(Config{RootDirectory: dir})
			require.NoError(t, err)
			defer srv.Close()
			addr, _, _ := serveOnLoopback(t, srv, ServeOptions{Limits: Limits{MinFreeBytes: c.reserve}})
			h := &hub{t: t, url: "http://" + addr}
			big := randomBytes(100 << 20)
			d := digest.FromBytes(big)
			chunked := func(method, u string) resp {
				req, err := http.NewRequest(method, u, io.MultiReader(strings.NewReader(string(big))))
				require.NoError(t, err)
				req.ContentLength = -1
				req.Header.Set("Content-Type", "application/octet-stream")
				res, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				return resp{status: res.StatusCode, header: res.Header, body: b}
			}
			for _, way := range []string{"chunked PATCH", "one-pass POST", "one-pass POST chunked", "monolithic PUT chunked"} {
				var r resp
				switch way {
				case "chunked PATCH":
					r = h.do("POST", "/v2/full/blobs/uploads/", nil, nil)
					require.Equal(t, http.StatusAccepted, r.status)
					r = chunked("PATCH", h.location(r))
				case "one-pass POST":
					r = h.do("POST", "/v2/full/blobs/uploads/?digest="+d.String(), nil, big)
				case "one-pass POST chunked":
					r = chunked("POST", h.url+"/v2/full/blobs/uploads/?digest="+d.String())
				case "monolithic PUT chunked":
					r = h.do("POST", "/v2/full/blobs/uploads/", nil, nil)
					require.Equal(t, http.StatusAccepted, r.status)
					r = chunked("PUT", withQuery(h.location(r), "digest="+d.String()))
				}
				t.Logf("%s of 100 MiB on a 64 MiB disk: %d %s; %d bytes left in uploads", way, r.status, r.body, uploadBytes(t, dir))
				assert.Equal(t, http.StatusInsufficientStorage, r.status, "%s: %s", way, r.body)
				assert.Equal(t, "INSUFFICIENT_STORAGE", r.code(), way)
				assert.NotContains(t, string(r.body), mnt, way)
				assert.Zero(t, uploadBytes(t, dir), "%s: data of the failed upload stayed", way)
				// the next upload works
				h.pushBlob("full", randomBytes(1<<20))
			}
		})
	}
}

// TestFlood: 20,000 connections that hold the hub idle (half of them after a request
// that got 401, half without sending anything), from 200 client addresses, do not keep a
// legitimate pull from being served. The process' open file limit (20,000 here) cannot
// hold both ends of them, so two child processes hold the client ends.
func TestFlood(t *testing.T) {
	if os.Getenv("FLOOD_ADDR") != "" {
		floodChild()
		return
	}
	if testing.Short() {
		t.Skip("floods in -short")
	}
	var rl syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl))
	rl.Cur = rl.Max
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl))
	per := int(min(10000, rl.Max-200)) // each child's share, under its own limit
	t.Logf("open file limit %d; %d flood connections from 2 processes", rl.Max, 2*per)

	dir := t.TempDir()
	pw := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, SetHtpasswdUser(pw, "admin", "flood-pass"))
	srv, err := New(Config{RootDirectory: dir, Htpasswd: pw})
	require.NoError(t, err)
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- srv.Serve(ctx, ln, ServeOptions{}) }()
	defer func() { cancel(); <-done }()
	h := &hub{t: t, url: "http://" + addr, user: "admin", pass: "flood-pass"}
	blob := randomBytes(4 << 20)
	d := h.pushBlob("legit", blob)

	var children []*exec.Cmd
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFlood$", "-test.count=1")
		cmd.Env = append(os.Environ(), "FLOOD_ADDR="+addr, fmt.Sprintf("FLOOD_N=%d", per), fmt.Sprintf("FLOOD_NET=%d", 10+i))
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		children = append(children, cmd)
		defer func() { stdin.Close(); _ = cmd.Wait() }()
		sc := bufio.NewScanner(out)
		for sc.Scan() { // "held N" once it holds them
			if strings.HasPrefix(sc.Text(), "held ") {
				t.Logf("child %d: %s", i, sc.Text())
				break
			}
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		t.Logf("the hub's process holds %d files", len(fds))
	}
	// a legitimate pull on a fresh connection
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	req, err := http.NewRequest("GET", h.url+"/v2/legit/blobs/"+d.String(), nil)
	require.NoError(t, err)
	req.SetBasicAuth("admin", "flood-pass")
	res, err := client.Do(req)
	require.NoError(t, err, "a legitimate pull under the flood")
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	took := time.Since(start)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, blob, got)
	t.Logf("legitimate pull of 4 MiB under the flood: %s", took.Round(time.Microsecond))
	assert.Less(t, took, 10*time.Second)
}

// floodChild holds FLOOD_N connections to FLOOD_ADDR from 127.FLOOD_NET.x.y, half of
// them after one request without credentials (a 401, kept alive), until its stdin closes (or 2 minutes).
func floodChild() {
	var rl syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	rl.Cur = rl.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	addr := os.Getenv("FLOOD_ADDR")
	n, _ := strconv.Atoi(os.Getenv("FLOOD_N"))
	netb := os.Getenv("FLOOD_NET")
	conns := make(chan net.Conn, n)
	var unauthorized atomic.Int64
	work := make(chan int)
	doneW := make(chan struct{})
	for w := 0; w < 16; w++ {
		go func() {
			defer func() { doneW <- struct{}{} }()
			for i := range work {
				from := net.ParseIP(fmt.Sprintf("127.%s.%d.%d", netb, 1+i/100/250, 1+(i/100)%250))
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from}, Timeout: 5 * time.Second}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					continue
				}
				if i%2 == 0 {
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err := fmt.Fprintf(c, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"); err == nil {
						if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
							_, _ = io.Copy(io.Discard, res.Body)
							res.Body.Close()
							if res.StatusCode == http.StatusUnauthorized {
								unauthorized.Add(1)
							}
						}
					}
					_ = c.SetDeadline(time.Time{})
				}
				conns <- c
			}
		}()
	}
	go func() {
		for i := 0; i < n; i++ {
			work <- i
		}
		close(work)
	}()
	for w := 0; w < 16; w++ {
		<-doneW
	}
	fmt.Printf("held %d (%d after a 401)\n", len(conns), unauthorized.Load())
	stop := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stop) }()
	select {
	case <-stop:
	case <-time.After(2 * time.Minute):
	}
	os.Exit(0)
}

func TestParseLimits(t *testing.T) {
	for _, c := range []struct {
		in      string
		bytes   int64
		percent float64
		bad     bool
	}{{"", 0, 0, false}, {"0", -1, 0, false}, {"5%", 0, 5, false}, {"0%", -1, 0, false}, {"2GiB", 2 << 30, 0, false},
		{"512m", 512 << 20, 0, false}, {"100%", 0, 0, true}, {"x", 0, 0, true}, {"-1", 0, 0, true}} {
		b, p, err := ParseReserve(c.in)
		if c.bad {
			assert.Error(t, err, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		assert.Equal(t, c.bytes, b, c.in)
		assert.Equal(t, c.percent, p, c.in)
	}
	n, err := ParseSize("64GiB")
	require.NoError(t, err)
	assert.Equal(t, int64(64<<30), n)
	l := Limits{}
	assert.Equal(t, uint64(1<<30), l.reserve(100<<30))
	assert.Equal(t, uint64(5<<20), l.reserve(100<<20))
	assert.Equal(t, uint64(10<<30), Limits{MinFreePercent: 10}.reserve(100<<30))
	assert.Zero(t, Limits{MinFreeBytes: -1}.reserve(100<<30))
}

// TestBodyDeadlineCleared: once a body is read whole, the rate window no longer applies:
// a handler that works on longer than the window is not cancelled (net/http clears the
// read deadline when it starts its own background read at the body's end; this keeps it so).
func TestBodyDeadlineCleared(t *testing.T) {
	srv, err := New(Config{InMemory: true})
	require.NoError(t, err)
	defer srv.Close()
	window := 500 * time.Millisecond
	var ctxErr error
	h := srv.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
			ctxErr = r.Context().Err()
		case <-time.After(3 * window):
		}
		w.WriteHeader(http.StatusCreated)
	}), Limits{MinBodyRate: 1 << 20, BodyRateWindow: window})
	ts := httptest.NewServer(h)
	defer ts.Close()
	res, err := http.Post(ts.URL+"/v2/x/manifests/v1", "application/octet-stream", strings.NewReader("{}"))
	require.NoError(t, err)
	res.Body.Close()
	assert.NoError(t, ctxErr)
	assert.Equal(t, http.StatusCreated, res.StatusCode)
}
