package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

var fuzzMethods = []string{"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"}

// FuzzHub sends arbitrary requests to hubs that hold an image with a tag, a referrer and
// an upload in progress: on a directory, in memory, and on a directory behind htpasswd
// (the request carries the fuzzed Authorization header, or the right one when that is
// "ok"); and to a hub that mirrors the first one as up.example. Whatever a client sends, the hub answers without panicking and without a 5xx:
// bad input is the client's error (4xx), never the server's.
func FuzzHub(f *testing.F) {
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`
	seeds := []struct {
		method      byte
		path, query string
		ctype, rng  string
		body        []byte
		auth        string
	}{
		{0, "/v2/", "", "", "", nil, "ok"},
		{0, "/v2/_catalog", "n=1&last=a", "", "", nil, "ok"},
		{0, "/v2/fuzz/app/tags/list", "n=0&last=v1", "", "", nil, "ok"},
		{0, "/v2/fuzz/app/manifests/v1", "", "", "", nil, "ok"},
		{1, "/v2/fuzz/app/manifests/sha256:00", "", "", "", nil, "ok"},
		{0, "/v2/fuzz/app/blobs/CONFIG", "", "", "bytes=0-0", nil, "ok"},
		{0, "/v2/fuzz/app/blobs/sha512:ab", "", "", "bytes=5-1", nil, "ok"},
		{0, "/v2/fuzz/app/referrers/MANIFEST", "artifactType=a%2Fb&n=-1&last=x", "", "", nil, "ok"},
		{0, "/v2/fuzz/app/referrers/MANIFEST", "n=1", "", "", nil, "ok"},
		{2, "/v2/fuzz/app/manifests/v2", "", "application/vnd.oci.image.manifest.v1+json", "", []byte(manifest), "ok"},
		{2, "/v2/fuzz/app/manifests/sha512:1234", "", "application/vnd.oci.image.index.v1+json", "", []byte(`{"schemaVersion":2,"manifests":[{"digest":"x"}]}`), "ok"},
		{3, "/v2/fuzz/app/blobs/uploads/", "digest=sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "application/octet-stream", "", []byte("{}"), "ok"},
		{3, "/v2/fuzz/other/blobs/uploads/", "mount=CONFIG&from=fuzz/app", "", "", nil, "ok"},
		{3, "/v2/fuzz/other/blobs/uploads/", "mount=sha512:00&from=fuzz/app", "", "", nil, "ok"},
		{4, "/v2/fuzz/app/blobs/uploads/UPLOAD", "STATE", "application/octet-stream", "0-3", []byte("abcd"), "ok"},
		{2, "/v2/fuzz/app/blobs/uploads/UPLOAD", "STATE&digest=sha256:88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589", "", "", []byte("abcd"), "ok"},
		{5, "/v2/fuzz/app/manifests/v1", "", "", "", nil, "ok"},
		{5, "/v2/fuzz/app/blobs/CONFIG", "", "", "", nil, "ok"},
		{0, "/v2/../../etc/passwd", "", "", "", nil, "ok"},
		{0, "/v2/a//b/manifests/%00", "", "", "", nil, "ok"},
		{0, "/v2/fuzz/app/manifests/v1", "", "", "", nil, ""},
		{0, "/v2/fuzz/app/manifests/v1", "", "", "", nil, "Basic !!!"},
		{0, "/v2/fuzz/app/manifests/v1", "", "", "", nil, "Basic ZnV6ejp3cm9uZw=="},
		{0, "/v2/", "", "", "", nil, "Bearer ok"},
		{0, "/v2/fuzz/app/manifests/v1", "ns=up.example", "", "", nil, ""},
		{1, "/v2/up.example/fuzz/app/blobs/CONFIG", "", "", "bytes=1-", nil, ""},
		{0, "/v2/fuzz/app/referrers/MANIFEST", "ns=up.example", "", "", nil, ""},
		{0, "/v2/up.example/fuzz/app/tags/list", "", "", "", nil, ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.ctype, s.rng, s.body, s.auth)
	}
	type target struct {
		mode string
		h    http.Handler
		seed *strings.Replacer
		auth string // what "ok" stands for
	}
	var targets []target
	for _, mode := range []string{"filesystem", "inmemory", "htpasswd"} {
		cfg := Config{InMemory: mode == "inmemory"}
		if !cfg.InMemory {
			cfg.RootDirectory = f.TempDir()
		}
		user, pass := "", ""
		if mode == "htpasswd" {
			cfg.Htpasswd = filepath.Join(f.TempDir(), "htpasswd")
			user, pass = "fuzz", "fuzz-pass"
			require.NoError(f, SetHtpasswdUser(cfg.Htpasswd, user, pass))
		}
		srv, err := New(cfg)
		require.NoError(f, err)
		f.Cleanup(func() { srv.Close() })
		ok := ""
		if user != "" {
			ok = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
		}
		targets = append(targets, target{mode, srv.Handler(), seedHub(f, srv, user, pass), ok})
	}
	// a mirror of the first hub, which fetches from it what it does not hold
	up := httptest.NewServer(targets[0].h)
	f.Cleanup(up.Close)
	mirror, err := New(Config{RootDirectory: f.TempDir(), Mirrors: []Mirror{{Registry: "up.example", URL: up.URL}}})
	require.NoError(f, err)
	f.Cleanup(func() { mirror.Close() })
	targets = append(targets, target{"mirror", mirror.Handler(), targets[0].seed, ""})
	f.Fuzz(func(t *testing.T, method byte, path, query, ctype, rng string, body []byte, auth string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		for _, tg := range targets {
			p, q := tg.seed.Replace(path), tg.seed.Replace(query)
			req, err := http.NewRequest(fuzzMethods[int(method)%len(fuzzMethods)], "http://hub"+p+"?"+q, bytes.NewReader(body))
			if err != nil {
				return // not a request a client can send
			}
			req.ContentLength = int64(len(body))
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			if a := strings.ReplaceAll(auth, "ok", tg.auth); a != "" {
				req.Header.Set("Authorization", a)
			}
			if rng != "" {
				req.Header.Set("Range", rng)
				req.Header.Set("Content-Range", rng)
			}
			rec := httptest.NewRecorder()
			tg.h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s hub: %s %s?%s (Content-Type %q, Range %q, %d bytes) answered %d: %s",
					tg.mode, req.Method, p, q, ctype, rng, len(body), rec.Code, rec.Body.String())
			}
		}
	})
}

// seedHub stores an image tagged v1 in fuzz/app, a referrer of it, and starts an upload;
// it returns what the fuzzed paths and queries name them by: CONFIG (a blob), MANIFEST,
// UPLOAD (the upload's id) and STATE (its state parameter).
func seedHub(f *testing.F, srv *Server, user, pass string) *strings.Replacer {
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	h := &hub{t: f, url: ts.URL, user: user, pass: pass}
	m, b := h.image("fuzz/app", 2)
	require.Equal(f, http.StatusCreated, h.putManifest("fuzz/app", "v1", b, v1.MediaTypeImageManifest).status)
	ref := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: m.Config, Layers: []v1.Descriptor{},
		Subject: &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}}
	ref.SchemaVersion = 2
	ref.ArtifactType = "application/vnd.example+json"
	rb, err := json.Marshal(ref)
	require.NoError(f, err)
	require.Equal(f, http.StatusCreated, h.putManifest("fuzz/app", digest.FromBytes(rb).String(), rb, v1.MediaTypeImageManifest).status)
	r := h.do("POST", "/v2/fuzz/app/blobs/uploads/", nil, nil)
	require.Equal(f, http.StatusAccepted, r.status)
	u, err := url.Parse(r.header.Get("Location"))
	require.NoError(f, err)
	return strings.NewReplacer("CONFIG", m.Config.Digest.String(), "MANIFEST", digest.FromBytes(b).String(),
		"UPLOAD", strings.TrimPrefix(u.Path, "/v2/fuzz/app/blobs/uploads/"), "STATE", u.RawQuery)
}

// FuzzMirrorUpstream has a mirroring hub fetch a tag from an upstream that answers it
// with any bytes under any content type. Whatever the upstream sends, the hub answers
// its client without a 5xx, then and from its cache.
func FuzzMirrorUpstream(f *testing.F) {
	f.Add(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`, "application/vnd.oci.image.index.v1+json")
	f.Add(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`, "application/vnd.oci.image.manifest.v1+json")
	f.Add("hello", "text/plain")
	f.Add(`{"schemaVersion":1}`, "")
	f.Add(`{"schemaVersion":2,"subject":{"digest":"sha256:zz"}}`, "application/vnd.oci.image.manifest.v1+json")
	f.Fuzz(func(t *testing.T, body, ctype string) {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				return
			}
			if ctype != "" {
				w.Header().Set("Content-Type", ctype)
			}
			_, _ = w.Write([]byte(body))
		}))
		defer up.Close()
		srv, err := New(Config{RootDirectory: t.TempDir(), Mirrors: []Mirror{{Registry: "up.example", URL: up.URL}}})
		require.NoError(t, err)
		defer srv.Close()
		for _, try := range []string{"fetch", "cache"} {
			for _, method := range []string{"HEAD", "GET"} {
				req := httptest.NewRequest(method, "/v2/app/manifests/v1?ns=up.example", nil)
				rec := httptest.NewRecorder()
				srv.Handler().ServeHTTP(rec, req)
				if rec.Code >= 500 {
					t.Fatalf("%s %s of a tag the upstream answers with %q (%q) answered %d: %s", try, method, body, ctype, rec.Code, rec.Body.String())
				}
			}
		}
	})
}
