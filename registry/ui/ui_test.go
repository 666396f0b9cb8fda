package ui_test

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	units "github.com/docker/go-units"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/cluster-image/sealos/registry/server"
)

// hub is an in-memory hub on a loopback listener.
type hub struct {
	t    *testing.T
	srv  *server.Server
	http *httptest.Server
	host string
}

func newHub(t *testing.T, cfg server.Config) *hub {
	t.Helper()
	cfg.InMemory = true
	srv, err := server.New(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return &hub{t: t, srv: srv, http: hs, host: strings.TrimPrefix(hs.URL, "http://")}
}

func (h *hub) ref(s string) name.Reference {
	h.t.Helper()
	r, err := name.ParseReference(h.host + "/" + s)
	require.NoError(h.t, err)
	return r
}

func (h *hub) push(ref string, img v1.Image, opts ...remote.Option) v1.Hash {
	h.t.Helper()
	require.NoError(h.t, remote.Write(h.ref(ref), img, opts...))
	d, err := img.Digest()
	require.NoError(h.t, err)
	return d
}

// get fetches a page and returns its status and body.
func (h *hub) get(path string, user ...string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.http.URL+path, nil)
	require.NoError(h.t, err)
	if len(user) == 2 {
		req.SetBasicAuth(user[0], user[1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return resp.StatusCode, string(b)
}

func (h *hub) page(path string) string {
	h.t.Helper()
	code, body := h.get(path)
	require.Equal(h.t, http.StatusOK, code, body)
	return body
}

func configured(t *testing.T, img v1.Image, labels map[string]string, env, cmd []string) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.Config.Labels, cf.Config.Env, cf.Config.Cmd = labels, env, cmd
	cf.OS, cf.Architecture = "linux", "amd64"
	out, err := mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	return out
}

func TestRepositoriesSearchAndPages(t *testing.T) {
	h := newHub(t, server.Config{})
	base, err := random.Image(64, 1)
	require.NoError(t, err)
	for i := range 230 {
		h.push(fmt.Sprintf("apps/app-%03d:v1", i), base)
	}
	h.push("tools/kubectl:v1", base)

	code, _ := h.get("/")
	assert.Equal(t, http.StatusOK, code, "/ redirects to the view")
	body := h.page("/ui/")
	assert.Contains(t, body, "231 repositories")
	assert.Contains(t, body, "page 1 of 3")
	assert.Contains(t, body, `href="/ui/repo/apps/app-000"`)
	assert.NotContains(t, body, "apps/app-100<", "100 per page")
	assert.Contains(t, h.page("/ui/?page=3"), "tools/kubectl")

	var res struct {
		Repos []string `json:"repos"`
		Total int      `json:"total"`
		Pages int      `json:"pages"`
	}
	require.NoError(t, json.Unmarshal([]byte(h.page("/ui/api/repos?q=KUBE")), &res))
	assert.Equal(t, []string{"tools/kubectl"}, res.Repos, "case-insensitive substring")
	require.NoError(t, json.Unmarshal([]byte(h.page("/ui/api/repos?q=app-1&page=2")), &res))
	assert.Equal(t, 100, res.Total, "app-100 .. app-199")
	assert.Equal(t, 1, res.Pages)
	assert.Len(t, res.Repos, 100, "a page past the last shows the last")
	assert.Contains(t, h.page("/ui/?q=nothing-matches"), "0 repositories")
}

func TestTagsAndImagePages(t *testing.T) {
	h := newHub(t, server.Config{})
	base, err := random.Image(1024, 2)
	require.NoError(t, err)
	img := configured(t, base, map[string]string{"sealos.io.type": "rootfs", "sealos.io.version": "v1beta1"}, []string{"criData=/var/lib/containerd"}, []string{"bash init.sh"})
	img = mutate.Annotations(img, map[string]string{"sealos.io.images": "docker.io/library/nginx:1.27, quay.io/x/y:1"}).(v1.Image)
	dgst := h.push("cluster/kubernetes:v1.30", img)
	nginx, err := random.Image(64, 1)
	require.NoError(t, err)
	h.push("library/nginx:1.27", nginx)

	// a referrer of the image: an SBOM artifact
	sbom, err := random.Image(32, 1)
	require.NoError(t, err)
	desc, err := remote.Head(h.ref("cluster/kubernetes:v1.30"))
	require.NoError(t, err)
	sbom = mutate.ConfigMediaType(mutate.MediaType(sbom, types.OCIManifestSchema1), "application/vnd.example.sbom+json")
	sbom = mutate.Subject(sbom, *desc).(v1.Image)
	sd, err := sbom.Digest()
	require.NoError(t, err)
	h.push("cluster/kubernetes@"+sd.String(), sbom)

	// an index of two platforms
	amd, arm := configured(t, base, nil, nil, nil), configured(t, base, nil, nil, nil)
	cf, _ := arm.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture = "arm64"
	arm, err = mutate.ConfigFile(arm, cf)
	require.NoError(t, err)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	require.NoError(t, remote.WriteIndex(h.ref("multi/app:v2"), idx))

	tags := h.page("/ui/repo/cluster/kubernetes")
	assert.Contains(t, tags, `href="/ui/image/cluster/kubernetes/-/v1.30"`)
	assert.Contains(t, tags, "rootfs")
	assert.Contains(t, tags, dgst.Hex[:12])
	assert.Contains(t, tags, "linux/amd64")

	page := html.UnescapeString(h.page("/ui/image/cluster/kubernetes/-/v1.30"))
	for _, want := range []string{
		`<dd id="type">rootfs</dd>`, dgst.String(), "criData=/var/lib/containerd", "bash init.sh",
		"sealos pull " + h.host + "/cluster/kubernetes:v1.30", "sealos run " + h.host + "/cluster/kubernetes:v1.30",
		"application/vnd.example.sbom+json", sd.Hex[:12],
	} {
		assert.Contains(t, page, want)
	}
	assert.Contains(t, page, `<tr class="present"><td><code>docker.io/library/nginx:1.27</code></td><td>yes, as <a href="/ui/repo/library/nginx">library/nginx</a>`)
	assert.Contains(t, page, `<tr class="absent"><td><code>quay.io/x/y:1</code></td><td>no</td>`)
	layers, err := img.Layers()
	require.NoError(t, err)
	for _, l := range layers {
		d, _ := l.Digest()
		assert.Contains(t, page, d.Hex[:12])
	}

	multi := h.page("/ui/image/multi/app/-/v2")
	assert.Contains(t, multi, `class="platform"`)
	assert.Contains(t, multi, "linux/amd64")
	assert.Contains(t, multi, "linux/arm64")
	assert.Contains(t, h.page("/ui/repo/multi/app"), "linux/amd64, linux/arm64")
	// by digest, a child of the index
	ad, _ := arm.Digest()
	assert.Contains(t, h.page("/ui/image/multi/app/-/"+ad.String()), `<dd id="platform">linux/arm64</dd>`)

	code, body := h.get("/ui/repo/no/such")
	assert.Equal(t, http.StatusNotFound, code, body)
	code, _ = h.get("/ui/image/cluster/kubernetes/-/nosuch")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = h.get("/ui/nosuch")
	assert.Equal(t, http.StatusNotFound, code)
	resp, err := http.Post(h.http.URL+"/ui/", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "read-only")
}

// What images carry is text from strangers: it is escaped, never markup or script.
func TestHostileTextIsEscaped(t *testing.T) {
	h := newHub(t, server.Config{})
	base, err := random.Image(64, 1)
	require.NoError(t, err)
	evil := `<script>alert(1)</script>`
	attr := `"><img src=x onerror=alert(2)>`
	img := configured(t, base, map[string]string{evil: attr, "sealos.io.type": evil}, []string{"X=" + evil}, []string{attr})
	img = mutate.Annotations(img, map[string]string{"note": evil, "sealos.io.images": "docker.io/library/a:1," + attr}).(v1.Image)
	h.push("evil/app:v1", img)
	for _, p := range []string{"/ui/", "/ui/repo/evil/app", "/ui/image/evil/app/-/v1", "/ui/sizes", "/ui/?q=" + evil} {
		body := h.page(p)
		assert.NotContains(t, body, "<script>alert", p)
		assert.NotContains(t, body, "<img src=x", p)
	}
	page := h.page("/ui/image/evil/app/-/v1")
	assert.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;")
	resp, err := http.Get(h.http.URL + "/ui/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'", "no inline script runs even if something slipped through")
}

func TestSizes(t *testing.T) {
	h := newHub(t, server.Config{})
	shared, err := random.Layer(4096, types.OCILayer)
	require.NoError(t, err)
	own, err := random.Layer(8192, types.OCILayer)
	require.NoError(t, err)
	a, err := mutate.AppendLayers(empty.Image, shared, own)
	require.NoError(t, err)
	b, err := mutate.AppendLayers(empty.Image, shared)
	require.NoError(t, err)
	h.push("big/a:v1", a)
	h.push("big/a:v2", a) // the same blobs under two tags count once
	h.push("small/b:v1", b)
	page := h.page("/ui/sizes")
	assert.Contains(t, page, `<svg id="size-chart"`)
	assert.Equal(t, 4, strings.Count(page, "<rect "), "two bars of two parts")
	sharedN, _ := shared.Size()
	ownN, _ := own.Size()
	// big/a: unique is its own layer (and its manifest and config), shared the common layer
	assert.Contains(t, page, fmt.Sprintf("big/a: %s shared", humanSize(sharedN)))
	assert.Regexp(t, `<td><a href="/ui/repo/big/a">big/a</a></td><td>2</td>`, page)
	assert.Greater(t, ownN, sharedN)
}

func TestMirrorPage(t *testing.T) {
	h := newHub(t, server.Config{Mirrors: []server.Mirror{{Registry: "docker.io"}}})
	img, err := random.Image(64, 1)
	require.NoError(t, err)
	h.push("docker.io/library/busybox:1.36", img) // synced into the namespace: never checked
	page := h.page("/ui/mirror")
	assert.Contains(t, page, "<h2>docker.io</h2>")
	assert.Contains(t, page, "none: serves what it holds")
	assert.Contains(t, page, "docker.io/library/busybox:1.36")
	assert.Contains(t, page, "never")
	code, _ := newHub(t, server.Config{}).get("/ui/mirror")
	assert.Equal(t, http.StatusNotFound, code, "not a mirror")
}

func TestLoginAndNoUI(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, os.WriteFile(htpasswd, []byte("admin:"+string(hash)+"\n"), 0o600))
	h := newHub(t, server.Config{Htpasswd: htpasswd})
	for _, p := range []string{"/", "/ui/", "/ui/sizes", "/ui/api/repos", "/ui/static/style.css"} {
		code, _ := h.get(p)
		assert.Equal(t, http.StatusUnauthorized, code, p)
	}
	resp, err := http.Get(h.http.URL + "/ui/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic", "the browser asks for the login")
	code, _ := h.get("/ui/", "admin", "wrong")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, body := h.get("/ui/", "admin", "s3cret")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "Repositories")

	off := newHub(t, server.Config{NoUI: true})
	code, _ = off.get("/ui/")
	assert.Equal(t, http.StatusNotFound, code, "--no-ui")
	code, _ = off.get("/")
	assert.Equal(t, http.StatusNotFound, code)
}

// humanSize is a size as the pages print it.
func humanSize(n int64) string { return units.HumanSize(float64(n)) }

// An image whose config names no platform (random images, some artifacts) has a page too.
func TestImageWithoutPlatform(t *testing.T) {
	h := newHub(t, server.Config{})
	img, err := random.Image(64, 1)
	require.NoError(t, err)
	h.push("bare/img:v1", img)
	assert.Contains(t, h.page("/ui/image/bare/img/-/v1"), `<dd id="platform"></dd>`)
}

// The sizes table shows 100 repositories a page, the largest first.
func TestSizesPages(t *testing.T) {
	h := newHub(t, server.Config{})
	img, err := random.Image(64, 1)
	require.NoError(t, err)
	for i := range 120 {
		h.push(fmt.Sprintf("many/r%03d:v1", i), img)
	}
	first := h.page("/ui/sizes")
	assert.Equal(t, 100, strings.Count(first, `<td><a href="/ui/repo/many/`))
	assert.Contains(t, first, "in 120 repositories")
	assert.Contains(t, first, "page 1 of 2")
	second := h.page("/ui/sizes?page=2")
	assert.Equal(t, 20, strings.Count(second, `<td><a href="/ui/repo/many/`))
	assert.Contains(t, second, `id="prev"`)
}
