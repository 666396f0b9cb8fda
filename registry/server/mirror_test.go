package server

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// countingHub is an upstream hub that counts the GETs it answers, by kind.
type countingHub struct {
	url       string
	host      string
	ts        *httptest.Server
	manifests atomic.Int64
	blobs     atomic.Int64
	delay     time.Duration // held before answering a blob, so concurrent pulls overlap
	mdelay    time.Duration // held before answering a manifest GET
}

func newCountingHub(t *testing.T) *countingHub {
	t.Helper()
	srv, err := New(Config{RootDirectory: t.TempDir()})
	require.NoError(t, err)
	c := &countingHub{}
	h := srv.Handler()
	c.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
			c.manifests.Add(1)
			time.Sleep(c.mdelay)
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			c.blobs.Add(1)
			time.Sleep(c.delay)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { c.ts.Close(); srv.Close() })
	c.url = c.ts.URL
	c.host = strings.TrimPrefix(c.ts.URL, "http://")
	return c
}

// nsTransport adds containerd's ?ns= to every request, as containerd does for a mirror.
type nsTransport struct{ ns string }

func (n nsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if strings.HasPrefix(r.URL.Path, "/v2/") && r.URL.Path != "/v2/" {
		q := r.URL.Query()
		q.Set("ns", n.ns)
		r.URL.RawQuery = q.Encode()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func pushTo(t *testing.T, ref string, img ggcrv1.Image) ggcrv1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	require.NoError(t, remote.Write(r, img))
	d, err := img.Digest()
	require.NoError(t, err)
	return d
}

func randomImg(t *testing.T, layers int) ggcrv1.Image {
	t.Helper()
	img, err := random.Image(8<<10, int64(layers))
	require.NoError(t, err)
	return img
}

// pullAll pulls ref (manifest, config and every layer) and returns its digest.
func pullAll(t *testing.T, ref string, opts ...remote.Option) (ggcrv1.Hash, error) {
	t.Helper()
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	img, err := remote.Image(r, opts...)
	if err != nil {
		return ggcrv1.Hash{}, err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return ggcrv1.Hash{}, err
	}
	ls, err := img.Layers()
	if err != nil {
		return ggcrv1.Hash{}, err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return ggcrv1.Hash{}, err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return ggcrv1.Hash{}, err
		}
	}
	return img.Digest()
}

func siteHub(t *testing.T, up *countingHub, ttl time.Duration) (*Server, string) {
	t.Helper()
	srv, ts := newTestServer(t, Config{Mirrors: []Mirror{{Registry: "docker.io", URL: up.url}}, MirrorTTL: ttl})
	return srv, strings.TrimPrefix(ts.URL, "http://")
}

var viaNS = remote.WithTransport(nsTransport{ns: "docker.io"})

func TestMirrorPullThroughKeepsAndServesOffline(t *testing.T) {
	up := newCountingHub(t)
	img := randomImg(t, 3)
	want := pushTo(t, up.host+"/library/app:v1", img)
	srv, site := siteHub(t, up, 0)

	got, err := pullAll(t, site+"/library/app:v1", viaNS)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, int64(4), up.blobs.Load(), "config and three layers fetched once")

	// kept in the mirror namespace, not in the site's own library/app
	m := srv.mirror
	ctx := context.Background()
	_, ok := m.tagDigest(ctx, "docker.io/library/app", "v1")
	assert.True(t, ok, "cached under docker.io/library/app")
	assert.False(t, m.repoExists(ctx, "library/app"), "the site's library/app is untouched")

	// the path-prefix form reads the same content, without upstream contact
	before := up.manifests.Load() + up.blobs.Load()
	got, err = pullAll(t, site+"/docker.io/library/app:v1")
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, before, up.manifests.Load()+up.blobs.Load())

	// upstream gone: cached content is still served
	up.ts.Close()
	got, err = pullAll(t, site+"/library/app:v1", viaNS)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	// and what was never cached is a plain 404, quickly
	_, err = pullAll(t, site+"/library/other:v1", viaNS)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "MANIFEST_UNKNOWN")
}

func TestMirrorIndexAndChildByDigest(t *testing.T) {
	up := newCountingHub(t)
	idx, err := random.Index(2048, 1, 2)
	require.NoError(t, err)
	r, err := name.ParseReference(up.host + "/library/multi:v1")
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(r, idx))
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	_, site := siteHub(t, up, 0)

	sr, err := name.ParseReference(site + "/library/multi:v1")
	require.NoError(t, err)
	got, err := remote.Index(sr, viaNS)
	require.NoError(t, err)
	gd, err := got.Digest()
	require.NoError(t, err)
	wd, err := idx.Digest()
	require.NoError(t, err)
	assert.Equal(t, wd, gd)
	for _, c := range im.Manifests {
		d, err := pullAll(t, site+"/library/multi@"+c.Digest.String(), viaNS)
		require.NoError(t, err)
		assert.Equal(t, c.Digest, d)
	}
}

// Concurrent requests for what the site does not hold yet wait for one upstream fetch.
// The upstream is slow (every request arrives while the first fetch is still running), so
// without the singleflight each request would fetch for itself: N upstream fetches, not 1.
func TestMirrorSingleflight(t *testing.T) {
	const clients = 16
	// concurrent sends n GETs of the site's path (through the mirror namespace) at once
	// and checks each gets want.
	concurrent := func(t *testing.T, site, p string, want []byte) {
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest(http.MethodGet, "http://"+site+p+"?ns=docker.io", nil)
				if !assert.NoError(t, err) {
					return
				}
				req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
				resp, err := http.DefaultClient.Do(req)
				if !assert.NoError(t, err) {
					return
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				assert.NoError(t, err)
				assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
				assert.Equal(t, want, body)
			}()
		}
		wg.Wait()
	}
	img := randomImg(t, 2)
	raw, err := img.RawManifest()
	require.NoError(t, err)
	layers, err := img.Layers()
	require.NoError(t, err)
	ld, err := layers[0].Digest()
	require.NoError(t, err)
	rc, err := layers[0].Compressed()
	require.NoError(t, err)
	layer, err := io.ReadAll(rc)
	require.NoError(t, err)
	rc.Close()

	t.Run("manifest", func(t *testing.T) {
		up := newCountingHub(t)
		up.mdelay = 300 * time.Millisecond
		pushTo(t, up.host+"/library/busy:v1", img)
		_, site := siteHub(t, up, 0)
		concurrent(t, site, "/v2/library/busy/manifests/v1", raw)
		assert.Equal(t, int64(1), up.manifests.Load(), "one upstream manifest fetch for %d concurrent requests", clients)
	})
	t.Run("blob", func(t *testing.T) {
		up := newCountingHub(t)
		up.delay = 300 * time.Millisecond
		pushTo(t, up.host+"/library/busy:v1", img)
		_, site := siteHub(t, up, 0)
		concurrent(t, site, "/v2/library/busy/blobs/"+ld.String(), layer)
		assert.Equal(t, int64(1), up.blobs.Load(), "one upstream blob fetch for %d concurrent requests", clients)
	})
	t.Run("pulls", func(t *testing.T) {
		up := newCountingHub(t)
		up.delay = 20 * time.Millisecond
		want := pushTo(t, up.host+"/library/busy:v1", img)
		_, site := siteHub(t, up, 0)
		var wg sync.WaitGroup
		errs := make([]error, clients)
		digests := make([]ggcrv1.Hash, clients)
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				digests[i], errs[i] = pullAll(t, site+"/library/busy:v1", viaNS)
			}()
		}
		wg.Wait()
		for i := range errs {
			require.NoError(t, errs[i])
			assert.Equal(t, want, digests[i])
		}
		assert.Equal(t, int64(1), up.manifests.Load(), "one upstream manifest fetch for %d clients", clients)
		assert.Equal(t, int64(3), up.blobs.Load(), "each blob fetched upstream once for %d clients", clients)
	})
}

func TestMirrorLocalPushesStillWork(t *testing.T) {
	up := newCountingHub(t)
	pushTo(t, up.host+"/library/app:v1", randomImg(t, 1)) // upstream has it too
	_, site := siteHub(t, up, 0)

	// the site's own images, pushed to the same hub
	localApp := pushTo(t, site+"/library/app:v1", randomImg(t, 1))
	localOnly := pushTo(t, site+"/library/tool:v2", randomImg(t, 2))

	// a pull for docker.io: the mirror namespace first, then the site's own repository (no
	// upstream contact), then upstream
	got, err := pullAll(t, site+"/library/tool:v2", viaNS)
	require.NoError(t, err)
	assert.Equal(t, localOnly, got)
	got, err = pullAll(t, site+"/library/app:v1", viaNS)
	require.NoError(t, err)
	assert.Equal(t, localApp, got, "content delivered to the site wins over the upstream")
	assert.Zero(t, up.manifests.Load())
	upstreamOnly := pushTo(t, up.host+"/library/new:v1", randomImg(t, 1))
	got, err = pullAll(t, site+"/library/new:v1", viaNS)
	require.NoError(t, err)
	assert.Equal(t, upstreamOnly, got)
	// plain pulls see the site's own push
	got, err = pullAll(t, site+"/library/app:v1")
	require.NoError(t, err)
	assert.Equal(t, localApp, got)
	// content synced into the mirror namespace ahead of time is served as cached
	pre := pushTo(t, site+"/docker.io/library/preloaded:v1", randomImg(t, 1))
	got, err = pullAll(t, site+"/library/preloaded:v1", viaNS)
	require.NoError(t, err)
	assert.Equal(t, pre, got)
}

func TestMirrorTTL(t *testing.T) {
	up := newCountingHub(t)
	first := pushTo(t, up.host+"/library/app:v1", randomImg(t, 1))
	_, forever := siteHub(t, up, 0)
	_, recheck := siteHub(t, up, time.Nanosecond) // every pull re-checks the tag

	for _, site := range []string{forever, recheck} {
		got, err := pullAll(t, site+"/library/app:v1", viaNS)
		require.NoError(t, err)
		assert.Equal(t, first, got)
	}
	second := pushTo(t, up.host+"/library/app:v1", randomImg(t, 1))
	got, err := pullAll(t, forever+"/library/app:v1", viaNS)
	require.NoError(t, err)
	assert.Equal(t, first, got, "kept forever by default")
	got, err = pullAll(t, recheck+"/library/app:v1", viaNS)
	require.NoError(t, err)
	assert.Equal(t, second, got, "re-checked after the TTL")

	// upstream down at re-check time: the cached tag is served
	up.ts.Close()
	got, err = pullAll(t, recheck+"/library/app:v1", viaNS)
	require.NoError(t, err)
	assert.Equal(t, second, got)
}

// An upstream that answers a tag with something that is no manifest (an error page, a
// schema 1 manifest) or one a push would be refused must not poison the cache: the pull
// finds nothing, and the next one, once the upstream is right again, gets the manifest.
func TestMirrorDoesNotCacheWhatItCannotServe(t *testing.T) {
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`
	var body atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			_, _ = io.WriteString(w, body.Load().(string))
		}
	}))
	defer up.Close()
	srv, ts := newTestServer(t, Config{Mirrors: []Mirror{{Registry: "up.example", URL: up.URL}}})
	h := &hub{t: t, url: ts.URL}
	for _, bad := range []string{"<html>bad gateway</html>", `{"schemaVersion":1,"name":"app","tag":"v1","fsLayers":[]}`, `{"schemaVersion":2,"mediaType":"text/plain"}`,
		// what a push would be refused: a child that cannot be named, a negative size
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:abc","size":1}]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digest.FromString("x").String() + `","size":-1}]}`,
	} {
		body.Store(bad)
		r := h.do("GET", "/v2/app/manifests/v1?ns=up.example", nil, nil)
		assert.Equal(t, http.StatusNotFound, r.status, "%s: %s", bad, r.body)
		assert.Equal(t, "MANIFEST_UNKNOWN", r.code())
		_, err := srv.driver.Stat(context.Background(), revisionLink("up.example/app", digest.FromString(bad)))
		assert.True(t, isNotFound(err), "%s was stored", bad)
	}
	body.Store(index)
	r := h.do("GET", "/v2/app/manifests/v1?ns=up.example", nil, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	assert.Equal(t, index, string(r.body))
}

func TestMirrorRefusesReadOnly(t *testing.T) {
	_, err := New(Config{RootDirectory: t.TempDir(), ReadOnly: true, Mirrors: []Mirror{{Registry: "docker.io"}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read-only")
}

func TestParseMirror(t *testing.T) {
	m, err := ParseMirror("docker.io=https://registry-1.docker.io/")
	require.NoError(t, err)
	assert.Equal(t, Mirror{Registry: "docker.io", URL: "https://registry-1.docker.io"}, m)
	m, err = ParseMirror("quay.io")
	require.NoError(t, err)
	assert.Equal(t, Mirror{Registry: "quay.io"}, m)
	for _, bad := range []string{"", "=http://x", "docker.io=ftp://x", "a/b=http://x", "docker.io=nourl"} {
		_, err := ParseMirror(bad)
		assert.Error(t, err, bad)
	}
}

// A registry with a port (myreg:5000) has the namespace myreg_5000: repository names
// cannot hold a colon.
func TestMirrorRegistryWithPort(t *testing.T) {
	up := newCountingHub(t)
	want := pushTo(t, up.host+"/team/app:v1", randomImg(t, 1))
	_, ts := newTestServer(t, Config{Mirrors: []Mirror{{Registry: "myreg:5000", URL: up.url}}})
	site := strings.TrimPrefix(ts.URL, "http://")

	got, err := pullAll(t, site+"/team/app:v1", remote.WithTransport(nsTransport{ns: "myreg:5000"}))
	require.NoError(t, err)
	assert.Equal(t, want, got)
	up.ts.Close()
	got, err = pullAll(t, site+"/myreg_5000/team/app:v1")
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, "myreg_5000", Namespace("myreg:5000"))
}

// A HEAD of a blob only the upstream has fetches and keeps it before answering, so a push
// into the mirror namespace that skips the blob leaves nothing missing.
func TestMirrorBlobHeadKeepsTheBlob(t *testing.T) {
	up := newCountingHub(t)
	img := randomImg(t, 1)
	pushTo(t, up.host+"/library/app:v1", img)
	ls, err := img.Layers()
	require.NoError(t, err)
	ld, err := ls[0].Digest()
	require.NoError(t, err)
	size, err := ls[0].Size()
	require.NoError(t, err)
	srv, site := siteHub(t, up, 0)

	req, err := http.NewRequest(http.MethodHead, "http://"+site+"/v2/library/app/blobs/"+ld.String()+"?ns=docker.io", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, size, resp.ContentLength)
	assert.Equal(t, ld.String(), resp.Header.Get("Docker-Content-Digest"))
	assert.True(t, srv.mirror.exists(context.Background(), blobData(digest.Digest(ld.String()))))
	assert.Equal(t, int64(1), up.blobs.Load())

	resp, err = http.Get("http://" + site + "/v2/library/app/blobs/" + ld.String() + "?ns=docker.io")
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, size, int64(len(b)))
	assert.Equal(t, int64(1), up.blobs.Load())

	// pushing the upstream's image into the mirror namespace (a sync ahead of time) works
	// while the upstream is there
	img2 := randomImg(t, 2)
	pushTo(t, up.host+"/library/other:v1", img2)
	got := pushTo(t, site+"/docker.io/library/other:v1", img2)
	d, err := pullAll(t, site+"/docker.io/library/other:v1")
	require.NoError(t, err)
	assert.Equal(t, got, d)
}

// An upstream that needs credentials gets the hub user's docker config.json ones.
func TestMirrorAuthenticatedUpstream(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	require.NoError(t, err)
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, os.WriteFile(htpasswd, []byte("mirror:"+string(hash)+"\n"), 0o600))
	_, upTS := newTestServer(t, Config{Htpasswd: htpasswd})
	upHost := strings.TrimPrefix(upTS.URL, "http://")
	basic := &authn.Basic{Username: "mirror", Password: "pw"}
	img := randomImg(t, 1)
	r, err := name.ParseReference(upHost + "/library/secret:v1")
	require.NoError(t, err)
	require.NoError(t, remote.Write(r, img, remote.WithAuth(basic)))
	want, err := img.Digest()
	require.NoError(t, err)

	cfgDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("mirror:pw"))
	require.NoError(t, os.WriteFile(filepath.Join(cfgDir, "config.json"),
		[]byte(`{"auths":{"`+upHost+`":{"auth":"`+auth+`"}}}`), 0o600))
	t.Setenv("DOCKER_CONFIG", cfgDir)

	_, ts := newTestServer(t, Config{Mirrors: []Mirror{{Registry: "docker.io", URL: upTS.URL}}})
	site := strings.TrimPrefix(ts.URL, "http://")
	got, err := pullAll(t, site+"/library/secret:v1", viaNS)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

// A client that goes away in the middle of a streamed blob does not stop the download
// into the hub: the next pull reads the kept copy, with one upstream fetch in all.
func TestMirrorBlobKeptWhenClientLeaves(t *testing.T) {
	up := newCountingHub(t)
	img, err := random.Image(4<<20, 1)
	require.NoError(t, err)
	pushTo(t, up.host+"/library/big:v1", img)
	ls, err := img.Layers()
	require.NoError(t, err)
	ld, err := ls[0].Digest()
	require.NoError(t, err)
	_, site := siteHub(t, up, 0)
	u := "http://" + site + "/v2/library/big/blobs/" + ld.String() + "?ns=docker.io"

	resp, err := http.Get(u)
	require.NoError(t, err)
	buf := make([]byte, 1024)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	resp.Body.Close() // gone after 1 KiB

	resp, err = http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h, n, err := ggcrv1.SHA256(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, ld, h)
	assert.Positive(t, n)
	assert.Equal(t, int64(1), up.blobs.Load())
}

// A client that only resolves a tag (a HEAD, as `sealos registry sync` does to compare
// digests) leaves the whole image in the hub: its blobs are fetched in the background, so
// it pulls once the upstream is gone.
func TestMirrorResolvedImageCompleteOffline(t *testing.T) {
	up := newCountingHub(t)
	want := pushTo(t, up.host+"/library/app:v1", randomImg(t, 3))
	srv, site := siteHub(t, up, 0)

	req, err := http.NewRequest(http.MethodHead, "http://"+site+"/v2/library/app/manifests/v1?ns=docker.io", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", allManifestTypes)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, want.String(), resp.Header.Get("Docker-Content-Digest"))

	srv.mirror.wait() // the background fetches end
	up.ts.Close()
	got, err := pullAll(t, site+"/library/app:v1", viaNS)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, int64(4), up.blobs.Load(), "each blob fetched once")
}
