package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	units "github.com/docker/go-units"
)

// Limits protect a hub from clients that hold its connections, send slowly or fill its
// disk. The zero value of every field is its default; a negative value switches a limit
// off.
type Limits struct {
	// IdleTimeout closes a keep-alive connection that waits this long for its next
	// request. Default 90s.
	IdleTimeout time.Duration
	// ReadHeaderTimeout is how long a client may take to send a request's headers.
	// Default 30s.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and headers. Default 64 KiB.
	MaxHeaderBytes int
	// MinBodyRate (bytes/s) over BodyRateWindow is the slowest a request body may
	// arrive: a body that brings less than MinBodyRate*BodyRateWindow bytes in any window
	// is cut (408) and the connection closed. A floor over a window, not a total
	// deadline: an upload of any size at disk speed is never cut. Default 1 KiB/s over 30s.
	MinBodyRate    int64
	BodyRateWindow time.Duration
	// MaxConnsPerAddr is how many connections one client address (IP) may hold; the ones
	// over it are closed as soon as they are accepted. Default 256.
	MaxConnsPerAddr int
	// MaxConns is how many connections the hub holds at all; a new connection over it
	// closes the longest idle one (or, if none is idle, itself). Default: what the open
	// file limit leaves after a headroom for the files the hub works with.
	MaxConns int
	// MaxUploadSize (bytes) bounds one blob upload, all of its chunks together; a larger
	// one is refused with 413 and its data removed. Default: none.
	MaxUploadSize int64
	// MinFreeBytes and MinFreePercent are the free space kept on the storage filesystem:
	// writes that would go under the larger of the two are refused with 507, an upload
	// that goes under it is cut and its data removed. Default (both 0): the smaller of
	// 1 GiB and 5% of the filesystem. MinFreeBytes < 0: no reserve.
	MinFreeBytes   int64
	MinFreePercent float64
}

func (l Limits) withDefaults() Limits {
	if l.IdleTimeout == 0 {
		l.IdleTimeout = 90 * time.Second
	}
	if l.ReadHeaderTimeout == 0 {
		l.ReadHeaderTimeout = 30 * time.Second
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	if l.MinBodyRate == 0 {
		l.MinBodyRate = 1 << 10
	}
	if l.BodyRateWindow <= 0 {
		l.BodyRateWindow = 30 * time.Second
	}
	if l.MaxConnsPerAddr == 0 {
		l.MaxConnsPerAddr = 256
	}
	if l.MaxConns == 0 {
		l.MaxConns = defaultMaxConns()
	}
	return l
}

// defaultMaxConns leaves a tenth of the open file limit (at least 1024 files, at most
// half of it) to what the hub opens besides connections.
func defaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<24 {
		return 10000
	}
	n := int(rl.Cur)
	return max(n/2, n-max(1024, n/10))
}

// reserve is the free space (bytes) kept on a filesystem of total bytes.
func (l Limits) reserve(total uint64) uint64 {
	if l.MinFreeBytes < 0 {
		return 0
	}
	if l.MinFreeBytes == 0 && l.MinFreePercent == 0 {
		return min(1<<30, total/20)
	}
	return max(uint64(l.MinFreeBytes), uint64(float64(total)*l.MinFreePercent/100))
}

// freeSpace returns the bytes free for the hub on the filesystem of dir, and the reserve
// limits keep there.
func freeSpace(dir string, l Limits) (free, reserve uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), l.reserve(st.Blocks * uint64(st.Bsize)), nil
}

// ParseSize reads a size flag: bytes, or with a binary unit ("64GiB", "512m"); "" or
// "0" is 0.
func ParseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: use bytes or a unit, e.g. 512MiB, 64GiB", s)
	}
	return n, nil
}

// ParseReserve reads a free-space reserve flag into Limits.MinFreeBytes and
// MinFreePercent: "5%", a size ("1GiB"), "0" for none, "" for the default.
func ParseReserve(s string) (bytes int64, percent float64, err error) {
	switch {
	case s == "":
		return 0, 0, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || p < 0 || p >= 100 {
			return 0, 0, fmt.Errorf("free-space reserve %q: a percentage is 0%% to 99%%", s)
		}
		if p == 0 {
			return -1, 0, nil
		}
		return 0, p, nil
	}
	n, err := ParseSize(s)
	if err != nil {
		return 0, 0, fmt.Errorf("free-space reserve: %w", err)
	}
	if n == 0 {
		return -1, 0, nil
	}
	return n, 0, nil
}

// A limitError cuts a request: the answer it gets whatever the handler answered.
type limitError struct {
	status  int
	code    string
	message string
}

func (e *limitError) Error() string { return e.message }

var (
	errNoSpace = &limitError{http.StatusInsufficientStorage, "INSUFFICIENT_STORAGE",
		"the registry's storage is full: free space on it, or push elsewhere"}
	errSlowBody = &limitError{http.StatusRequestTimeout, "BLOB_UPLOAD_INVALID",
		"request body too slow: the registry cuts bodies that arrive slower than its minimum rate"}
)

func errTooLarge(limit int64) *limitError {
	return &limitError{http.StatusRequestEntityTooLarge, "SIZE_INVALID",
		fmt.Sprintf("upload larger than the registry's limit of %d bytes", limit)}
}

// guard wraps the hub's handler with the request limits: bounded error bodies (see
// guardWriter), the body read rate, the upload size limit and the free-space reserve, and
// the removal of an upload session's data when one of them cut it.
func (s *Server) guard(h http.Handler, l Limits) http.Handler {
	l = l.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw := &guardWriter{ResponseWriter: w, root: s.cfg.RootDirectory, head: r.Method == http.MethodHead}
		defer gw.finish()
		var session string // the upload session r writes to, if any
		if isWrite(r.Method) && r.Method != http.MethodDelete {
			if m := uploadPath.FindStringSubmatch(r.URL.Path); m != nil && m[2] != "" && validUploadID(m[2]) {
				session = path.Join(repoPath(m[1]), "_uploads", m[2])
			}
			if err := s.admitWrite(r, l, session); err != nil {
				gw.cut = err
				return
			}
		}
		hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
		if hasBody {
			gb := &guardBody{ReadCloser: r.Body, gw: gw, limit: -1}
			if session != "" || uploadStartPath.MatchString(r.URL.Path) {
				if l.MaxUploadSize > 0 {
					gb.limit = l.MaxUploadSize - s.uploadedSoFar(r.Context(), session)
					gb.max = l.MaxUploadSize
				}
				if s.cfg.RootDirectory != "" {
					gb.spaceOK = func() bool {
						free, reserve, err := freeSpace(s.cfg.RootDirectory, l)
						return err != nil || free >= reserve
					}
				}
			}
			if l.MinBodyRate > 0 {
				rc := http.NewResponseController(w)
				if rc.SetReadDeadline(time.Now().Add(l.BodyRateWindow)) == nil {
					gb.rc, gb.quota, gb.window = rc, l.MinBodyRate*int64(l.BodyRateWindow/time.Second), l.BodyRateWindow
					if gb.quota <= 0 {
						gb.quota = l.MinBodyRate
					}
				}
			}
			r.Body = gb
		}
		h.ServeHTTP(gw, r)
		if session != "" && gw.failed() {
			// what a cut or failed upload wrote is removed at once: a client that
			// resumes starts a new session anyway
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if sd, ok := s.driver.(*syncingDriver); ok {
				// distribution does not close the session's file when a PATCH fails:
				// emptied, the file frees its space although the handle stays open
				_ = os.Truncate(sd.full(path.Join(session, "data")), 0)
			}
			_ = s.driver.Delete(ctx, session)
		}
	})
}

// admitWrite refuses a write that would take the storage under its reserve, and an
// upload that says it is larger than the limit.
func (s *Server) admitWrite(r *http.Request, l Limits, session string) *limitError {
	upload := session != "" || uploadStartPath.MatchString(r.URL.Path)
	if upload && l.MaxUploadSize > 0 && r.ContentLength > 0 &&
		s.uploadedSoFar(r.Context(), session)+r.ContentLength > l.MaxUploadSize {
		return errTooLarge(l.MaxUploadSize)
	}
	if s.cfg.RootDirectory == "" || s.cfg.ReadOnly {
		return nil
	}
	free, reserve, err := freeSpace(s.cfg.RootDirectory, l)
	if err != nil {
		return nil // the write itself reports what is wrong
	}
	need := uint64(max(r.ContentLength, 0))
	if free < reserve || free-reserve < need {
		return errNoSpace
	}
	return nil
}

// uploadedSoFar is how many bytes upload session holds already.
func (s *Server) uploadedSoFar(ctx context.Context, session string) int64 {
	if session == "" {
		return 0
	}
	fi, err := s.driver.Stat(ctx, path.Join(session, "data"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// guardBody enforces the body limits as the handler reads.
type guardBody struct {
	io.ReadCloser
	gw *guardWriter

	limit, max, n int64 // limit: bytes still allowed (-1: any); max: the configured limit
	spaceOK       func() bool
	nextCheck     int64

	rc      *http.ResponseController
	quota   int64 // bytes each window must bring
	window  time.Duration
	inQuota int64
}

// spaceCheckEvery is how often (bytes read) an upload checks the free space.
const spaceCheckEvery = 4 << 20

func (b *guardBody) Read(p []byte) (int, error) {
	if b.gw.cut != nil {
		return 0, b.gw.cut
	}
	if b.limit >= 0 && int64(len(p)) > b.limit-b.n+1 {
		p = p[:b.limit-b.n+1]
	}
	k, err := b.ReadCloser.Read(p)
	b.n += int64(k)
	if b.limit >= 0 && b.n > b.limit {
		b.gw.cut = errTooLarge(b.max)
	}
	if b.spaceOK != nil && b.n >= b.nextCheck && b.gw.cut == nil {
		b.nextCheck = b.n + spaceCheckEvery
		if !b.spaceOK() {
			b.gw.cut = errNoSpace
		}
	}
	if err != nil && b.rc != nil && b.gw.cut == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		b.gw.cut = errSlowBody
	}
	if b.gw.cut != nil {
		return k, b.gw.cut
	}
	if b.rc != nil {
		if b.inQuota += int64(k); b.inQuota >= b.quota {
			b.inQuota = 0
			_ = b.rc.SetReadDeadline(time.Now().Add(b.window))
		}
	}
	return k, err
}

// maxErrorCollect is how much of an error body guardWriter reads; error bodies are small
// unless they echo input, which is bounded anyway.
const maxErrorCollect = 1 << 20

// guardWriter holds back error answers (status >= 400) until the handler is done, to
// answer them in one shape: a request cut by a limit gets that limit's answer; a storage
// full error from below (distribution's 500 UNKNOWN, a 400 of a one-pass upload) becomes
// 507; every other error body has its strings bounded (boundErrorBody) and the storage
// root hidden.
type guardWriter struct {
	http.ResponseWriter
	root   string
	head   bool
	cut    *limitError
	status int
	wrote  bool
	held   *bytes.Buffer // the error body held back; nil: passed through
}

func (w *guardWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.status = code
	if (code >= 400 || w.cut != nil) && !w.head {
		w.held = &bytes.Buffer{}
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *guardWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.held != nil {
		if room := maxErrorCollect - w.held.Len(); room > 0 {
			w.held.Write(p[:min(len(p), room)])
		}
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps sendfile reachable through the wrapper.
func (w *guardWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok && w.held == nil {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{w}, src)
}

func (w *guardWriter) Flush() {
	if w.held != nil {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *guardWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// failed says whether the request's answer is one after which an upload's data is removed.
func (w *guardWriter) failed() bool {
	if w.cut != nil {
		return true
	}
	return w.status >= 500 || w.status == http.StatusRequestEntityTooLarge || w.status == http.StatusRequestTimeout
}

// finish writes the held-back answer.
func (w *guardWriter) finish() {
	if w.cut == nil && w.held != nil && (w.status == http.StatusInternalServerError || w.status == http.StatusBadRequest) && isNoSpace(w.held.Bytes()) {
		w.cut = errNoSpace
	}
	if w.cut != nil {
		if w.cut == errSlowBody {
			w.Header().Set("Connection", "close")
		}
		w.status = w.cut.status
		w.Header().Del("Location")
		w.Header().Del("Docker-Upload-UUID")
		w.Header().Del("Range")
		writeError(w.ResponseWriter, w.cut.status, w.cut.code, w.cut.message, nil)
		return
	}
	if w.held == nil {
		return
	}
	body := boundErrorBody(w.held.Bytes(), w.root)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.ResponseWriter.WriteHeader(w.status)
	_, _ = w.ResponseWriter.Write(body)
}

// isNoSpace says whether an error body reports a full disk (ENOSPC, EDQUOT).
func isNoSpace(body []byte) bool {
	return bytes.Contains(body, []byte(syscall.ENOSPC.Error())) || bytes.Contains(body, []byte(syscall.EDQUOT.Error()))
}

// isNoSpaceErr says whether err is a full disk.
func isNoSpaceErr(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// connLimiter is a listener that bounds connections per client address and in all,
// evicting the longest idle connection when it is full.
type connLimiter struct {
	net.Listener
	perAddr, max int

	mu     sync.Mutex
	byAddr map[string]int
	conns  map[*limitedConn]struct{}
}

func newConnLimiter(ln net.Listener, l Limits) *connLimiter {
	return &connLimiter{Listener: ln, perAddr: l.MaxConnsPerAddr, max: l.MaxConns,
		byAddr: map[string]int{}, conns: map[*limitedConn]struct{}{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		lc := &limitedConn{Conn: c, l: l, addr: host}
		lc.idleSince.Store(time.Now().UnixNano())
		l.mu.Lock()
		if l.perAddr > 0 && l.byAddr[host] >= l.perAddr {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		var victim *limitedConn
		if l.max > 0 && len(l.conns) >= l.max {
			victim = l.oldestIdle()
			if victim == nil {
				l.mu.Unlock()
				_ = c.Close()
				continue
			}
			l.drop(victim)
		}
		l.byAddr[host]++
		l.conns[lc] = struct{}{}
		l.mu.Unlock()
		if victim != nil {
			_ = victim.Conn.Close()
		}
		return lc, nil
	}
}

// oldestIdle is the connection that waits longest for a request (nil: none waits). l.mu held.
func (l *connLimiter) oldestIdle() *limitedConn {
	var best *limitedConn
	var since int64
	for c := range l.conns {
		if t := c.idleSince.Load(); t > 0 && (best == nil || t < since) {
			best, since = c, t
		}
	}
	return best
}

// drop forgets c. l.mu held.
func (l *connLimiter) drop(c *limitedConn) {
	if _, ok := l.conns[c]; !ok {
		return
	}
	delete(l.conns, c)
	if l.byAddr[c.addr]--; l.byAddr[c.addr] <= 0 {
		delete(l.byAddr, c.addr)
	}
}

// count is how many connections l holds.
func (l *connLimiter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// connState tracks which connections wait for a request (http.Server.ConnState).
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	switch st {
	case http.StateIdle:
		lc.idleSince.Store(time.Now().UnixNano())
	case http.StateActive, http.StateHijacked:
		lc.idleSince.Store(0)
	}
}

type limitedConn struct {
	net.Conn
	l         *connLimiter
	addr      string
	idleSince atomic.Int64 // unix ns since it waits for a request; 0: busy
	once      sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.drop(c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
