package server

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSinglePostLayout: a blob stored by the one-pass single POST is where distribution
// looks for it (a hub started afresh on the directory serves it, and a manifest can use
// it), the upload session is gone, and a second POST of the same content in another
// repository only links it.
func TestSinglePostLayout(t *testing.T) {
	dir := t.TempDir()
	_, ts := newTestServer(t, Config{RootDirectory: dir})
	h := &hub{t: t, url: ts.URL}
	blob := randomBytes(3<<20 + 17)
	d := digest.FromBytes(blob)
	for _, repo := range []string{"one/a", "two"} {
		r := h.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), nil, blob)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		assert.Equal(t, "/v2/"+repo+"/blobs/"+d.String(), locPath(t, r))
		assert.Equal(t, "registry/2.0", r.header.Get("Docker-Distribution-API-Version"))
		staged, _ := os.ReadDir(filepath.Join(dir, stagingDir))
		assert.Empty(t, staged, "staged data left behind")
	}
	h2 := usableByFreshHub(t, dir, "two", d, len(blob))
	r := h2.do("GET", "/v2/one/a/blobs/"+d.String(), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, blob, r.body)
	// a repository that never received it does not see it
	assert.Equal(t, http.StatusNotFound, h2.do("HEAD", "/v2/three/blobs/"+d.String(), nil, nil).status)
}

// usableByFreshHub checks that blob d (size bytes) of repo is in distribution's layout:
// the data file holds it, and distribution itself (a fresh hub on dir, no cache, not the
// sendfile path) accepts a manifest of repo using it. It returns that hub.
func usableByFreshHub(t *testing.T, dir, repo string, d digest.Digest, size int) *hub {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "docker/registry/v2/blobs/sha256", d.Encoded()[:2], d.Encoded(), "data"))
	require.NoError(t, err)
	assert.Equal(t, d, digest.FromBytes(data))
	_, ts := newTestServer(t, Config{RootDirectory: dir})
	h := &hub{t: t, url: ts.URL}
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cd := h.pushBlob(repo, cfg)
	mb := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		cd, len(cfg), d, size))
	require.Equal(t, http.StatusCreated, h.putManifest(repo, "v1", mb, "application/vnd.oci.image.manifest.v1+json").status)
	return h
}

// TestSinglePostCut: a single POST whose body stops short (client gone, or a body shorter
// than its digest's content) leaves no blob, no link and no session, and the same POST
// afterwards succeeds.
func TestSinglePostCut(t *testing.T) {
	// staged through the page cache, and with O_DIRECT (from directMin)
	for _, size := range []int{2 << 20, directMin + 3<<20 + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { testSinglePostCut(t, size) })
	}
}

func testSinglePostCut(t *testing.T, size int) {
	dir := t.TempDir()
	_, ts := newTestServer(t, Config{RootDirectory: dir})
	h := &hub{t: t, url: ts.URL}
	blob := randomBytes(size)
	d := digest.FromBytes(blob)

	u, _ := url.Parse(ts.URL)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "POST /v2/cut/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", d, u.Host, len(blob))
	require.NoError(t, err)
	_, err = conn.Write(blob[:len(blob)/2])
	require.NoError(t, err)
	require.NoError(t, conn.Close())

	require.Eventually(t, func() bool { e, _ := os.ReadDir(filepath.Join(dir, stagingDir)); return len(e) == 0 }, 10*time.Second, 10*time.Millisecond,
		"the cut upload's data is removed")
	assert.NoFileExists(t, filepath.Join(dir, "docker/registry/v2/blobs/sha256", d.Encoded()[:2], d.Encoded(), "data"))
	assert.Equal(t, http.StatusNotFound, h.do("HEAD", "/v2/cut/blobs/"+d.String(), nil, nil).status)

	// complete body, wrong content
	r := h.do("POST", "/v2/cut/blobs/uploads/?digest="+d.String(), nil, blob[:1000])
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "DIGEST_INVALID", r.code())
	assert.Equal(t, http.StatusNotFound, h.do("HEAD", "/v2/cut/blobs/"+d.String(), nil, nil).status)

	r = h.do("POST", "/v2/cut/blobs/uploads/?digest="+d.String(), nil, blob)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = h.do("GET", "/v2/cut/blobs/"+d.String(), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, d, digest.FromBytes(r.body))
}

// TestMonolithicPutLayout: POST then one PUT with the whole blob takes the one-pass path:
// the blob is in distribution's layout and usable, the session is gone whatever the
// outcome (a wrong digest too), and a session that received chunks, or an unknown one,
// is still distribution's to answer.
func TestMonolithicPutLayout(t *testing.T) {
	dir := t.TempDir()
	_, ts := newTestServer(t, Config{RootDirectory: dir})
	h := &hub{t: t, url: ts.URL}
	octet := map[string]string{"Content-Type": "application/octet-stream"}
	uploads := filepath.Join(dir, "docker/registry/v2/repositories/mono/_uploads")
	blob := randomBytes(9<<20 + 5)
	d := digest.FromBytes(blob)

	// wrong digest: 400, no blob, the session is gone
	r := h.do("POST", "/v2/mono/blobs/uploads/", nil, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	loc := h.location(r)
	r = h.do("PUT", withQuery(loc, "digest="+digest.FromBytes(blob[1:]).String()), octet, blob)
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "DIGEST_INVALID", r.code())
	assert.Equal(t, http.StatusNotFound, h.do("GET", loc, nil, nil).status)
	sessions, _ := os.ReadDir(uploads)
	assert.Empty(t, sessions)

	r = h.do("POST", "/v2/mono/blobs/uploads/", nil, nil)
	loc = h.location(r)
	r = h.do("PUT", withQuery(loc, "digest="+d.String()), octet, blob)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	assert.Equal(t, "/v2/mono/blobs/"+d.String(), locPath(t, r))
	assert.Equal(t, d.String(), r.header.Get("Docker-Content-Digest"))
	sessions, _ = os.ReadDir(uploads)
	assert.Empty(t, sessions, "the session is removed")
	staged, _ := os.ReadDir(filepath.Join(dir, stagingDir))
	assert.Empty(t, staged)
	usableByFreshHub(t, dir, "mono", d, len(blob))

	// a session that received a chunk: distribution completes it with the rest
	b2 := randomBytes(3000)
	r = h.do("POST", "/v2/mono/blobs/uploads/", nil, nil)
	r = h.do("PATCH", h.location(r), map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "0-999"}, b2[:1000])
	require.Equal(t, http.StatusAccepted, r.status)
	r = h.do("PUT", withQuery(h.location(r), "digest="+digest.FromBytes(b2).String()), octet, b2[1000:])
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = h.do("GET", "/v2/mono/blobs/"+digest.FromBytes(b2).String(), nil, nil)
	assert.Equal(t, b2, r.body)

	// an unknown session is distribution's to refuse
	r = h.do("PUT", "/v2/mono/blobs/uploads/0190e0e0-0000-7000-8000-000000000000?digest="+d.String(), octet, blob[:10])
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, http.StatusNotFound, h.do("HEAD", "/v2/mono/blobs/"+digest.FromBytes(blob[:10]).String(), nil, nil).status)
}
