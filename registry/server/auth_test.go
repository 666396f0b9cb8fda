package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAuth(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "auth", "htpasswd")
	require.NoError(t, SetHtpasswdUser(pw, "admin", "s3cret-pass"))
	require.NoError(t, SetHtpasswdUser(pw, "bob", "bobpass"))
	var log, debugLog syncBuffer
	// distribution's own log at its most verbose, captured
	logrus.SetOutput(&debugLog)
	t.Cleanup(func() { logrus.SetOutput(os.Stderr); configureLogging(logrus.ErrorLevel) })
	srv, ts := newTestServer(t, Config{Htpasswd: pw, AccessLog: &log, LogLevel: "debug"})

	anon := &hub{t: t, url: ts.URL}
	for _, p := range []string{"/v2/", "/v2/_catalog", "/v2/x/tags/list", "/v2/x/referrers/sha256:" + strings.Repeat("a", 64)} {
		r := anon.do("GET", p, nil, nil)
		assert.Equal(t, http.StatusUnauthorized, r.status, p)
		assert.Equal(t, `Basic realm="sealos-registry"`, r.header.Get("WWW-Authenticate"), p)
		assert.Equal(t, "UNAUTHORIZED", r.code(), p)
	}
	r := anon.do("POST", "/v2/x/blobs/uploads/", nil, nil)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "registry/2.0", r.header.Get("Docker-Distribution-API-Version"))

	wrong := &hub{t: t, url: ts.URL, user: "admin", pass: "nope"}
	assert.Equal(t, http.StatusUnauthorized, wrong.do("GET", "/v2/", nil, nil).status)
	nobody := &hub{t: t, url: ts.URL, user: "eve", pass: "s3cret-pass"}
	assert.Equal(t, http.StatusUnauthorized, nobody.do("GET", "/v2/", nil, nil).status)

	admin := &hub{t: t, url: ts.URL, user: "admin", pass: "s3cret-pass"}
	assert.Equal(t, http.StatusOK, admin.do("GET", "/v2/", nil, nil).status)
	_, mb := admin.image("private/app", 1)
	assert.Equal(t, http.StatusCreated, admin.putManifest("private/app", "v1", mb, "application/vnd.oci.image.manifest.v1+json").status)
	bob := &hub{t: t, url: ts.URL, user: "bob", pass: "bobpass"}
	assert.Equal(t, http.StatusOK, bob.do("GET", "/v2/private/app/manifests/v1", nil, nil).status)

	// verified passwords are cached; a wrong password for a cached user still fails
	assert.Len(t, srv.auth.verified, 2)
	assert.Equal(t, http.StatusUnauthorized, (&hub{t: t, url: ts.URL, user: "bob", pass: "bobpass2"}).do("GET", "/v2/", nil, nil).status)

	// a password change takes effect at once and forgets the cached one
	require.NoError(t, SetHtpasswdUser(pw, "bob", "newpass"))
	assert.Equal(t, http.StatusUnauthorized, bob.do("GET", "/v2/", nil, nil).status)
	bob.pass = "newpass"
	assert.Equal(t, http.StatusOK, bob.do("GET", "/v2/", nil, nil).status)
	require.NoError(t, RemoveHtpasswdUser(pw, "bob"))
	assert.Equal(t, http.StatusUnauthorized, bob.do("GET", "/v2/", nil, nil).status)
	assert.Equal(t, http.StatusOK, admin.do("GET", "/v2/", nil, nil).status)

	// the access log names users, never passwords or headers
	l := log.String()
	assert.Contains(t, l, " admin GET /v2/ 200 ")
	assert.Contains(t, l, " - GET /v2/ 401 ")
	for _, secret := range []string{"s3cret-pass", "bobpass", "newpass", "Authorization", "Basic "} {
		assert.NotContains(t, l, secret)
		assert.NotContains(t, debugLog.String(), secret)
	}
	assert.Contains(t, debugLog.String(), "private/app", "the debug log was captured")
}

func TestHtpasswdFile(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "htpasswd")
	require.Error(t, RemoveHtpasswdUser(pw, "x"))
	require.Error(t, SetHtpasswdUser(pw, "a:b", "x"))
	require.Error(t, SetHtpasswdUser(pw, "a", ""))
	require.NoError(t, SetHtpasswdUser(pw, "a", "1"))
	require.NoError(t, SetHtpasswdUser(pw, "b", "2"))
	require.NoError(t, SetHtpasswdUser(pw, "a", "3"))
	_, err := newHtpasswdAuth(pw, "r")
	require.NoError(t, err)

	_, err = ParseHtpasswd([]byte("# comment\n\nu:$2y$05$abc\n"))
	require.NoError(t, err)
	_, err = ParseHtpasswd([]byte("u:{SHA}abc\n"))
	require.ErrorContains(t, err, "only bcrypt")
	_, err = ParseHtpasswd([]byte("garbage\n"))
	require.Error(t, err)

	_, err = New(Config{RootDirectory: t.TempDir(), Htpasswd: filepath.Join(t.TempDir(), "missing")})
	require.Error(t, err)
}

func TestConfigErrors(t *testing.T) {
	_, err := New(Config{})
	require.Error(t, err)
	_, err = New(Config{RootDirectory: t.TempDir(), LogLevel: "loud"})
	require.ErrorContains(t, err, "log level")

	// distribution panics on a bad URL pattern: New returns it as an error
	cfgFile := filepath.Join(t.TempDir(), "config.yml")
	require.NoError(t, writeFile(cfgFile, "version: 0.1\nstorage:\n  inmemory: {}\nvalidation:\n  manifests:\n    urls:\n      allow: ['(']\n"))
	dc, err := LoadDistributionConfig(cfgFile)
	require.NoError(t, err)
	_, err = New(Config{RootDirectory: t.TempDir(), Distribution: dc})
	require.ErrorContains(t, err, "configuration")

	_, err = LoadDistributionConfig(filepath.Join(t.TempDir(), "nope.yml"))
	require.Error(t, err)
	require.NoError(t, writeFile(cfgFile, "version: 0.1\nstorage: [\n"))
	_, err = LoadDistributionConfig(cfgFile)
	require.Error(t, err)

	// a valid file is honoured (here: a tighter tag limit and a header)
	require.NoError(t, writeFile(cfgFile, "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /nonexistent\nhttp:\n  headers:\n    X-Hub: [\"yes\"]\n"))
	dc, err = LoadDistributionConfig(cfgFile)
	require.NoError(t, err)
	_, ts := newTestServer(t, Config{Distribution: dc})
	r := (&hub{t: t, url: ts.URL}).do("GET", "/v2/", nil, nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "yes", r.header.Get("X-Hub"))
}

func TestAuthFromDistributionConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "htpasswd")
	require.NoError(t, SetHtpasswdUser(pw, "u", "p"))
	cfgFile := filepath.Join(dir, "config.yml")
	require.NoError(t, writeFile(cfgFile, "version: 0.1\nstorage:\n  inmemory: {}\nauth:\n  htpasswd:\n    realm: myrealm\n    path: "+pw+"\n"))
	dc, err := LoadDistributionConfig(cfgFile)
	require.NoError(t, err)
	srv, ts := newTestServer(t, Config{Distribution: dc})
	require.NotNil(t, srv.auth)
	r := (&hub{t: t, url: ts.URL}).do("GET", "/v2/", nil, nil)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, `Basic realm="myrealm"`, r.header.Get("WWW-Authenticate"))
	assert.Equal(t, http.StatusOK, (&hub{t: t, url: ts.URL, user: "u", pass: "p"}).do("GET", "/v2/", nil, nil).status)
}

// fromAddr is a client whose connections come from the loopback address ip.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
}

// login sends GET /v2/ with basic credentials and returns the response (body read).
func login(t testing.TB, c *http.Client, url, user, pass string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/v2/", nil)
	require.NoError(t, err)
	req.SetBasicAuth(user, pass)
	res, err := c.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// countBcrypt makes srv count the bcrypt comparisons it runs, and the cost of each.
func countBcrypt(srv *Server) (calls *atomic.Int64, costs *sync.Map) {
	calls, costs = &atomic.Int64{}, &sync.Map{}
	cmp := srv.auth.compare
	srv.auth.compare = func(hash, pass []byte) error {
		calls.Add(1)
		if c, err := bcrypt.Cost(hash); err == nil {
			costs.Store(c, true)
		}
		return cmp(hash, pass)
	}
	return calls, costs
}

// A login of a user the file lacks costs one bcrypt of the users' cost, as a wrong
// password does: the answer's time does not tell which user names exist.
func TestAuthFailuresCostTheSame(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, SetHtpasswdUser(pw, "admin", "s3cret-pass"))
	srv, ts := newTestServer(t, Config{Htpasswd: pw})
	calls, costs := countBcrypt(srv)
	c := fromAddr("127.0.0.1")

	for _, tc := range []struct {
		name, user, pass string
		status           int
		bcrypts          int64
	}{
		{"wrong password", "admin", "nope", http.StatusUnauthorized, 1},
		{"unknown user", "eve", "nope", http.StatusUnauthorized, 1},
		{"unknown user, a known password", "eve", "s3cret-pass", http.StatusUnauthorized, 1},
		{"right password", "admin", "s3cret-pass", http.StatusOK, 1},
		{"right password again (cached)", "admin", "s3cret-pass", http.StatusOK, 0},
		{"wrong password of a cached user", "admin", "s3cret-pas", http.StatusUnauthorized, 1},
	} {
		before := calls.Load()
		res := login(t, c, ts.URL, tc.user, tc.pass)
		assert.Equal(t, tc.status, res.StatusCode, tc.name)
		assert.Equal(t, tc.bcrypts, calls.Load()-before, "bcrypt runs: %s", tc.name)
	}
	n := 0
	costs.Range(func(k, _ any) bool {
		assert.Equal(t, bcrypt.DefaultCost, k, "bcrypt cost")
		n++
		return true
	})
	assert.Equal(t, 1, n, "one bcrypt cost for every check")
}

// An address that fails too often gets 429 with Retry-After, without bcrypt, whatever it
// sends; other addresses are not affected.
func TestAuthBackoffPerAddress(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, SetHtpasswdUser(pw, "admin", "s3cret-pass"))
	srv, ts := newTestServer(t, Config{Htpasswd: pw})
	calls, _ := countBcrypt(srv)
	attacker, other, valid := fromAddr("127.0.0.2"), fromAddr("127.0.0.3"), fromAddr("127.0.0.1")
	limit := srv.auth.backoff.limit

	require.Equal(t, http.StatusOK, login(t, valid, ts.URL, "admin", "s3cret-pass").StatusCode)
	for i := 0; i < limit; i++ {
		user := "admin"
		if i%2 == 1 {
			user = fmt.Sprintf("guess%d", i)
		}
		require.Equal(t, http.StatusUnauthorized, login(t, attacker, ts.URL, user, "wrong").StatusCode, "failure %d", i+1)
	}
	before := calls.Load()
	for _, pass := range []string{"wrong", "s3cret-pass"} {
		res := login(t, attacker, ts.URL, "admin", pass)
		assert.Equal(t, http.StatusTooManyRequests, res.StatusCode)
		assert.NotEmpty(t, res.Header.Get("Retry-After"))
	}
	assert.Equal(t, before, calls.Load(), "a refused address runs no bcrypt")
	// without credentials it is only asked for them (clients ask before they log in)
	assert.Equal(t, http.StatusUnauthorized, (&hub{t: t, url: ts.URL}).do("GET", "/v2/", nil, nil).status)

	// other addresses: served, and checked as usual
	assert.Equal(t, http.StatusOK, login(t, valid, ts.URL, "admin", "s3cret-pass").StatusCode)
	assert.Equal(t, http.StatusUnauthorized, login(t, other, ts.URL, "admin", "wrong").StatusCode)
	assert.Equal(t, http.StatusOK, login(t, other, ts.URL, "admin", "s3cret-pass").StatusCode)
}

// failureBackoff: limit failures within the window, then refusals that double.
func TestFailureBackoff(t *testing.T) {
	b := newFailureBackoff()
	b.limit, b.window, b.base, b.maxWait = 3, time.Minute, time.Second, 4*time.Second
	now := time.Unix(1000, 0)
	for i := 0; i < 2; i++ {
		b.fail("a", now)
		assert.Zero(t, b.blocked("a", now))
	}
	b.fail("a", now)
	assert.Equal(t, time.Second, b.blocked("a", now))
	assert.Zero(t, b.blocked("b", now), "another address")
	now = now.Add(time.Second)
	assert.Zero(t, b.blocked("a", now))
	b.fail("a", now)
	assert.Equal(t, 2*time.Second, b.blocked("a", now))
	now = now.Add(2 * time.Second)
	b.fail("a", now)
	assert.Equal(t, 4*time.Second, b.blocked("a", now))
	now = now.Add(4 * time.Second)
	b.fail("a", now)
	assert.Equal(t, 4*time.Second, b.blocked("a", now), "at most maxWait")
	// quiet for a window: forgotten
	now = now.Add(4*time.Second + time.Minute + 1)
	b.fail("a", now)
	assert.Zero(t, b.blocked("a", now))

	// a bounded table: addresses not refused make room
	b = newFailureBackoff()
	b.limit, b.maxAddrs = 1, 3
	b.fail("x", now)
	for i := 0; i < 10; i++ {
		b.fail(fmt.Sprint(i), now.Add(time.Duration(i)*time.Hour))
	}
	assert.LessOrEqual(t, len(b.addrs), 3)

	assert.Equal(t, "192.0.2.1", clientKey("192.0.2.1:5000"))
	assert.Equal(t, "192.0.2.1", clientKey("[::ffff:192.0.2.1]:5000"))
	assert.Equal(t, "2001:db8:1:2::/64", clientKey("[2001:db8:1:2:3:4:5:6]:443"))
}

// 40 threads of wrong passwords from one address: a valid client elsewhere keeps being
// served, and the attacker's bcrypt runs stop at the back-off's limit.
func TestAuthFloodValidClientServed(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, SetHtpasswdUser(pw, "admin", "s3cret-pass"))
	srv, ts := newTestServer(t, Config{Htpasswd: pw})
	calls, _ := countBcrypt(srv)
	srv.auth.backoff.base = time.Minute // no second allowance within the test
	valid := fromAddr("127.0.0.1")
	require.Equal(t, http.StatusOK, login(t, valid, ts.URL, "admin", "s3cret-pass").StatusCode)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	attacker := fromAddr("127.0.0.2")
	var wg sync.WaitGroup
	var refused, failed atomic.Int64
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/v2/", nil)
				req.SetBasicAuth("admin", fmt.Sprintf("guess-%d", i))
				res, err := attacker.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				switch res.StatusCode {
				case http.StatusTooManyRequests:
					refused.Add(1)
				case http.StatusUnauthorized:
					failed.Add(1)
				}
			}
		}()
	}
	var lat []time.Duration
	for ctx.Err() == nil {
		start := time.Now()
		res := login(t, valid, ts.URL, "admin", "s3cret-pass")
		lat = append(lat, time.Since(start))
		require.Equal(t, http.StatusOK, res.StatusCode)
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	slices.Sort(lat)
	t.Logf("valid requests: %d, median %v, max %v; attacker: %d refused with 429, %d answered 401; bcrypt runs %d",
		len(lat), lat[len(lat)/2], lat[len(lat)-1], refused.Load(), failed.Load(), calls.Load())
	assert.Greater(t, refused.Load(), int64(0))
	assert.LessOrEqual(t, calls.Load(), int64(srv.auth.backoff.limit+1), "bcrypt runs: the valid login and the attacker's allowance")
}
