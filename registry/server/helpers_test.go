package server

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

func newTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.RootDirectory == "" && !cfg.InMemory {
		cfg.RootDirectory = t.TempDir()
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return srv, ts
}

// hub is a raw HTTP client of one test hub.
type hub struct {
	t    testing.TB
	url  string
	user string
	pass string
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) code() string {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	_ = json.Unmarshal(r.body, &e)
	if len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func (h *hub) do(method, path string, hdr map[string]string, body []byte) resp {
	h.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = h.url + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(h.t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if h.user != "" {
		req.SetBasicAuth(h.user, h.pass)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(h.t, err)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// location resolves a Location header against the hub.
func (h *hub) location(r resp) string {
	h.t.Helper()
	loc := r.header.Get("Location")
	require.NotEmpty(h.t, loc, "no Location header")
	if strings.HasPrefix(loc, "/") {
		return h.url + loc
	}
	return loc
}

func withQuery(u, q string) string {
	if strings.Contains(u, "?") {
		return u + "&" + q
	}
	return u + "?" + q
}

// pushBlob uploads b monolithically (POST + PUT) and returns its digest.
func (h *hub) pushBlob(repo string, b []byte) digest.Digest {
	h.t.Helper()
	d := digest.FromBytes(b)
	r := h.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	require.Equal(h.t, http.StatusAccepted, r.status, string(r.body))
	r = h.do("PUT", withQuery(h.location(r), "digest="+d.String()), map[string]string{"Content-Type": "application/octet-stream"}, b)
	require.Equal(h.t, http.StatusCreated, r.status, string(r.body))
	return d
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// image pushes a config and layers and returns a manifest (not pushed) referring to them.
func (h *hub) image(repo string, layers int) (v1.Manifest, []byte) {
	h.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}` + string(randomBytes(0)))
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest}
	m.SchemaVersion = 2
	m.Config = v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: h.pushBlob(repo, cfg), Size: int64(len(cfg))}
	for i := 0; i < layers; i++ {
		l := randomBytes(512 + i)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: h.pushBlob(repo, l), Size: int64(len(l))})
	}
	b, err := json.Marshal(m)
	require.NoError(h.t, err)
	return m, b
}

func (h *hub) putManifest(repo, ref string, b []byte, mediaType string) resp {
	h.t.Helper()
	return h.do("PUT", "/v2/"+repo+"/manifests/"+ref, map[string]string{"Content-Type": mediaType}, b)
}

// locPath is the path of a response's Location (absolute or relative).
func locPath(t *testing.T, r resp) string {
	t.Helper()
	u, err := url.Parse(r.header.Get("Location"))
	require.NoError(t, err)
	return u.Path
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }
