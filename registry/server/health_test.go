package server

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func getHealth(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + healthPath)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /healthz needs no login, says ok while the storage answers, and 503 when it does not.
func TestHealth(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, SetHtpasswdUser(pw, "admin", "s3cret-pass"))
	dir := t.TempDir()
	srv, ts := newTestServer(t, Config{RootDirectory: dir, Htpasswd: pw})
	code, body := getHealth(t, ts.URL)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)

	// the storage gone from under the hub: the registry root is a file now
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "docker")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker"), []byte("x"), 0o644))
	code, body = getHealth(t, ts.URL)
	assert.Equal(t, http.StatusServiceUnavailable, code, body)
	assert.Contains(t, body, "storage")

	require.NoError(t, srv.Close())
	code, body = getHealth(t, ts.URL)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "stopping\n", body)

	_, mem := newTestServer(t, Config{InMemory: true})
	code, _ = getHealth(t, mem.URL)
	assert.Equal(t, http.StatusOK, code, "an empty in-memory hub is healthy")
}
