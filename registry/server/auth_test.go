package server

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
