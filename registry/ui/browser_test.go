package ui_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"

	"github.com/cluster-image/sealos/internal/testtool"
	"github.com/cluster-image/sealos/registry/server"
)

// The browser tests drive the web view in headless Chromium, as a user would: the
// search-as-you-type script, the pager, clicking from the list to an image, the size
// chart, and the login. The other tests of the package read the HTML; these also run
// the page's script against the hub's JSON, under its Content-Security-Policy.

// browserStep bounds each step: a page that never shows what a step waits for fails
// that step, by name, with what the page showed instead.
const browserStep = 20 * time.Second

// browserApps is how many small application repositories the hub holds: enough for
// three pages of the list (100 to a page) and a search that filters them.
const browserApps = 250

// TestBrowser seeds a hub with 250 application repositories, a rootfs cluster image
// that carries two container images (one held by the hub) and has an SBOM referrer,
// and a two-platform index, and walks the view: the list and its count, search as you
// type, the pager, the repository and image pages, the index's platforms, the size
// chart, with screenshots of the list, the image page and the size chart.
func TestBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	b := openBrowser(ctx, t) // first: skips before seeding when there is no Chromium
	h := startBrowserHub(t, server.Config{})
	seed := seedBrowserHub(ctx, t, h)
	shots := t.TempDir()
	if dir := os.Getenv("SEALOS_UI_SCREENSHOTS"); dir != "" { // to keep them and look
		require.NoError(t, os.MkdirAll(dir, 0o755))
		shots = dir
	}
	total := len(seed.repos)
	pages := (total + 99) / 100
	require.Equal(t, 3, pages, "the seed is meant to fill three pages")

	// The list: every repository counted, the first 100 shown.
	b.open(h.url + "/ui/")
	b.until("#count", jsText("#count"), fmt.Sprintf("%d repositories", total))
	b.until("#pageinfo", jsText("#pageinfo"), fmt.Sprintf("page 1 of %d", pages))
	b.until("#repos on page 1", jsList("#repos a.repo"), strings.Join(seed.repos[:100], "\n"))
	b.screenshot(shots, "repositories.png")

	// Search as you type: the script asks /ui/api/repos and redraws list, count and pager.
	b.do("type kube into #search", chromedp.SendKeys(chromedp.ID("search"), "kube"))
	b.until("#repos after typing kube", jsList("#repos a.repo"), "cluster/kubernetes")
	b.until("#count after typing kube", jsText("#count"), "1 repository matching “kube”")
	b.until("#pageinfo after typing kube", jsText("#pageinfo"), "page 1 of 1")
	b.until("location after typing kube", "location.pathname + location.search", "/ui/?q=kube")

	b.retype("app-1")
	apps1 := reposMatching(seed.repos, "app-1")
	b.until("#count after typing app-1", jsText("#count"), fmt.Sprintf("%d repositories matching “app-1”", len(apps1)))
	b.until("#repos after typing app-1", jsList("#repos a.repo"), strings.Join(apps1, "\n"))

	// Back to all, and through the pager (links the script drew).
	b.retype("")
	b.until("#count after clearing #search", jsText("#count"), fmt.Sprintf("%d repositories", total))
	b.do("click #next", chromedp.Click(chromedp.ID("next")))
	b.until("#pageinfo after #next", jsText("#pageinfo"), fmt.Sprintf("page 2 of %d", pages))
	b.until("#repos on page 2", jsList("#repos a.repo"), strings.Join(seed.repos[100:200], "\n"))
	b.until("#prev on page 2", jsCount("#pager #prev"), "1")
	b.do("click #next", chromedp.Click(chromedp.ID("next")))
	b.until("#pageinfo after #next", jsText("#pageinfo"), fmt.Sprintf("page 3 of %d", pages))
	b.until("#repos on page 3", jsList("#repos a.repo"), strings.Join(seed.repos[200:], "\n"))
	b.until("#next on the last page", jsCount("#pager #next"), "0")

	// Click through: repository, tag, image.
	b.do("click cluster/kubernetes", chromedp.Click(chromedp.CSS(`#repos a.repo[href="/ui/repo/cluster/kubernetes"]`)))
	b.until("repository page", "location.pathname", "/ui/repo/cluster/kubernetes")
	b.until("h1#repo", jsText("h1#repo"), "cluster/kubernetes")
	b.until("#tags tr.tag a.tag-link", jsList("#tags tr.tag a.tag-link"), "v1.30")
	b.do("click the tag v1.30", chromedp.Click(chromedp.CSS("#tags tr.tag a.tag-link")))
	b.until("image page", "location.pathname", "/ui/image/cluster/kubernetes/-/v1.30")
	b.until("#type", jsText("#type"), "rootfs")

	target := h.host + "/cluster/kubernetes:v1.30"
	commands := b.text("#commands")
	assert.Contains(t, commands, "sealos pull "+target, "#commands")
	assert.Contains(t, commands, "sealos run "+target, "#commands")
	assert.Equal(t, seed.cluster.String(), b.text("#digest"), "#digest")
	assert.Equal(t, "linux/amd64", b.text("#platform"), "#platform")
	assert.NotEmpty(t, b.text("#size"), "#size")
	assert.Equal(t, "sealos.io.type\trootfs\nsealos.io.version\tv1beta1", b.eval(jsList("#labels tr")), "#labels rows")
	assert.Equal(t, "KUBE_VERSION=v1.30.0", b.eval(jsList("#env li")), "#env")
	assert.Equal(t, "bash\ninit.sh", b.eval(jsList("#cmd li")), "#cmd")
	assert.Equal(t, "2", b.eval(jsCount("#layers tbody tr")), "#layers rows")
	assert.Equal(t, "docker.io/library/nginx:1.27", b.eval(jsList("#images tr.present code")), "#images tr.present")
	assert.Equal(t, "quay.io/x/y:1", b.eval(jsList("#images tr.absent code")), "#images tr.absent")
	assert.Contains(t, b.text("#images tr.present"), "library/nginx", "#images tr.present says where the hub holds it")
	assert.Contains(t, b.text("#annotations"), "sealos.io.images", "#annotations")
	assert.Equal(t, "application/vnd.example.sbom", b.eval(jsList("#referrers tbody tr td:first-child")), "#referrers artifact type")
	assert.Contains(t, b.text("#referrers"), seed.sbom.Hex[:12], "#referrers digest")
	assert.Contains(t, b.text("#referrers"), "org.example.kind=sbom", "#referrers annotations")
	assert.Equal(t, "0", b.eval(jsCount("#warnings")), "#warnings: a valid rootfs image has none")
	b.screenshot(shots, "image.png")

	// An index lists its platforms; each links to its image.
	b.open(h.url + "/ui/image/multi/app/-/v2")
	b.until("#platforms a.platform", jsList("#platforms a.platform"), "linux/amd64\nlinux/arm64")
	assert.Equal(t, "0", b.eval(jsCount("#type")), "an index has no #type of its own")
	assert.Contains(t, b.text("#commands"), "sealos pull "+h.host+"/multi/app:v2", "#commands")
	b.do("click linux/arm64", chromedp.Click(chromedp.CSS("#platforms tbody tr:nth-child(2) a.platform")))
	b.until("arm64 image page", "location.pathname", "/ui/image/multi/app/-/"+seed.arm64.String())
	b.until("#platform of the arm64 image", jsText("#platform"), "linux/arm64")

	// Sizes: a bar per repository (the largest) and a row for each, 100 a page.
	b.open(h.url + "/ui/sizes")
	b.until("#sizes rows", jsCount("#sizes tbody tr"), "100")
	b.until("#pageinfo of sizes", jsText("#pageinfo"), fmt.Sprintf("page 1 of %d", (total+99)/100))
	rects := b.nodes("#size-chart rect")
	assert.NotEmpty(t, rects, "#size-chart rect")
	for _, n := range rects {
		assert.Equal(t, "rect", strings.ToLower(n.NodeName))
	}
	assert.Contains(t, b.text("#total"), fmt.Sprintf("in %d repositories", total), "#total")
	assert.Contains(t, b.eval(jsList("#size-chart text")), "cluster/kubernetes", "#size-chart names the largest repositories")
	b.screenshot(shots, "sizes.png")

	assert.Empty(t, b.errors.String(), "errors the pages reported (script exceptions, CSP refusals)")
}

// TestBrowserAuth checks that with htpasswd on, the view needs a login as the API does
// (401 with a Basic challenge); that a browser that answers the challenge, as a user at
// the login prompt does, sees the list and can search (the script's requests carry the
// login the browser keeps); that credentials in the URL work as well; and that the
// access log never holds the password.
func TestBrowserAuth(t *testing.T) {
	testtool.Require(t, "chromium")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	const user = "viewer"
	secret := make([]byte, 12)
	_, _ = rand.Read(secret)
	pass := "pw-" + hex.EncodeToString(secret)
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	require.NoError(t, err)
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600))
	access := &browserLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("access log:\n%s", access)
		}
	})
	h := startBrowserHub(t, server.Config{Htpasswd: htpasswd, AccessLog: access},
		remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	h.push(ctx, t, "team/app:v1", browserImage(t, linuxAMD64, 512))

	// Without credentials: 401 and a Basic challenge, for the pages and the script's API.
	for _, p := range []string{"/ui/", "/ui/api/repos?q=team", "/ui/sizes"} {
		res, err := http.Get(h.url + p)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "GET %s without credentials", p)
		assert.True(t, strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic "),
			"GET %s: WWW-Authenticate %q", p, res.Header.Get("WWW-Authenticate"))
	}

	t.Run("login prompt", func(t *testing.T) {
		b := openBrowser(ctx, t)
		challenges := b.login(user, pass)
		b.open(h.url + "/ui/")
		b.until("#count", jsText("#count"), "1 repository")
		b.until("#repos", jsList("#repos a.repo"), "team/app")
		b.do("type team into #search", chromedp.SendKeys(chromedp.ID("search"), "team"))
		b.until("#count after typing team", jsText("#count"), "1 repository matching “team”")
		b.do("click team/app", chromedp.Click(chromedp.CSS(`#repos a.repo[href="/ui/repo/team/app"]`)))
		b.until("h1#repo", jsText("h1#repo"), "team/app")
		b.until("#tags", jsList("#tags tr.tag a.tag-link"), "v1")
		assert.Positive(t, challenges.Load(), "the hub challenged the browser")
		t.Logf("login challenges answered: %d", challenges.Load())
	})

	// Chromium takes credentials from the URL for the page; the script's requests must
	// work too (a relative fetch() from such a page throws: "Request cannot be
	// constructed from a URL that includes credentials").
	t.Run("credentials in the URL", func(t *testing.T) {
		b := openBrowser(ctx, t)
		b.open("http://" + user + ":" + pass + "@" + h.host + "/ui/")
		b.until("#count", jsText("#count"), "1 repository")
		b.until("#repos", jsList("#repos a.repo"), "team/app")
		b.do("type team into #search", chromedp.SendKeys(chromedp.ID("search"), "team"))
		b.until("#count after typing team", jsText("#count"), "1 repository matching “team”")
	})

	log := access.String()
	assert.NotContains(t, log, pass, "the access log holds the password")
	assert.NotContains(t, log, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)), "the access log holds the Authorization header")
	assert.Contains(t, log, " "+user+" GET /ui/ 200 ", "the access log names the user of the page")
	assert.Contains(t, log, " "+user+" GET /ui/api/repos 200 ", "the access log names the user of the script's search")
}

// browserHub is an in-memory hub on a loopback listener. Loopback registries are plain
// HTTP to go-containerregistry, so references need no options.
type browserHub struct {
	url  string // http://127.0.0.1:PORT
	host string // 127.0.0.1:PORT
	opts []remote.Option
}

func startBrowserHub(t *testing.T, cfg server.Config, opts ...remote.Option) *browserHub {
	t.Helper()
	cfg.InMemory = true
	srv, err := server.New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return &browserHub{url: ts.URL, host: strings.TrimPrefix(ts.URL, "http://"),
		opts: append([]remote.Option{remote.WithTransport(http.DefaultTransport)}, opts...)}
}

// write pushes img as ref ("repo:tag" or "repo@digest").
func (h *browserHub) write(ctx context.Context, ref string, img v1.Image) error {
	r, err := name.ParseReference(h.host + "/" + ref)
	if err != nil {
		return err
	}
	if err := remote.Write(r, img, append(h.opts, remote.WithContext(ctx))...); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

func (h *browserHub) push(ctx context.Context, t *testing.T, ref string, img v1.Image) v1.Hash {
	t.Helper()
	require.NoError(t, h.write(ctx, ref, img))
	d, err := img.Digest()
	require.NoError(t, err)
	return d
}

// browserSeed is what seedBrowserHub pushed.
type browserSeed struct {
	repos   []string // every repository, sorted as the view lists them
	cluster v1.Hash  // cluster/kubernetes:v1.30
	sbom    v1.Hash  // the artifact whose subject is the cluster image
	arm64   v1.Hash  // the linux/arm64 image of multi/app:v2
}

var (
	linuxAMD64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

func seedBrowserHub(ctx context.Context, t *testing.T, h *browserHub) browserSeed {
	t.Helper()
	var seed browserSeed

	// Applications share a base layer, so the size chart has shared bytes to draw.
	base, err := random.Layer(4096, types.OCILayer)
	require.NoError(t, err)
	apps := make([]v1.Image, browserApps)
	for i := range apps {
		apps[i] = browserImage(t, linuxAMD64, 256+int64(i), base)
		seed.repos = append(seed.repos, fmt.Sprintf("apps/app-%03d", i))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, img := range apps {
		g.Go(func() error { return h.write(gctx, seed.repos[i]+":v1", img) })
	}
	require.NoError(t, g.Wait())

	// A rootfs cluster image that records two container images; the hub holds one.
	cluster := browserImage(t, linuxAMD64, 8192)
	extra, err := random.Layer(16384, types.OCILayer)
	require.NoError(t, err)
	cluster, err = mutate.AppendLayers(cluster, extra)
	require.NoError(t, err)
	cf, err := cluster.ConfigFile()
	require.NoError(t, err)
	cfg := *cf.Config.DeepCopy()
	cfg.Labels = map[string]string{"sealos.io.type": "rootfs", "sealos.io.version": "v1beta1"}
	cfg.Env = []string{"KUBE_VERSION=v1.30.0"}
	cfg.Cmd = []string{"bash", "init.sh"}
	cluster, err = mutate.Config(cluster, cfg)
	require.NoError(t, err)
	cluster = mutate.Annotations(cluster, map[string]string{
		"sealos.io.images": "docker.io/library/nginx:1.27,quay.io/x/y:1",
	}).(v1.Image)
	seed.cluster = h.push(ctx, t, "cluster/kubernetes:v1.30", cluster)
	h.push(ctx, t, "library/nginx:1.27", browserImage(t, linuxAMD64, 1024))

	// An SBOM that refers to the cluster image, pushed by digest into its repository.
	subject, err := partial.Descriptor(cluster)
	require.NoError(t, err)
	doc, err := random.Layer(300, "application/spdx+json")
	require.NoError(t, err)
	sbom, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), "application/vnd.example.sbom"), doc)
	require.NoError(t, err)
	sbom = mutate.Annotations(sbom, map[string]string{"org.example.kind": "sbom"}).(v1.Image)
	sbom = mutate.Subject(sbom, *subject).(v1.Image)
	seed.sbom, err = sbom.Digest()
	require.NoError(t, err)
	require.NoError(t, h.write(ctx, "cluster/kubernetes@"+seed.sbom.String(), sbom))

	// A two-platform index.
	amdImg, armImg := browserImage(t, linuxAMD64, 2048), browserImage(t, linuxARM64, 2048)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amdImg, Descriptor: v1.Descriptor{Platform: &linuxAMD64}},
		mutate.IndexAddendum{Add: armImg, Descriptor: v1.Descriptor{Platform: &linuxARM64}},
	)
	r, err := name.ParseReference(h.host + "/multi/app:v2")
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(r, idx, append(h.opts, remote.WithContext(ctx))...))
	seed.arm64, err = armImg.Digest()
	require.NoError(t, err)

	seed.repos = append(seed.repos, "cluster/kubernetes", "library/nginx", "multi/app")
	sort.Strings(seed.repos)
	return seed
}

// browserImage is an OCI image for platform p: the shared layers, then one of size
// random bytes.
func browserImage(t *testing.T, p v1.Platform, size int64, shared ...v1.Layer) v1.Image {
	t.Helper()
	own, err := random.Layer(size, types.OCILayer)
	require.NoError(t, err)
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, append(shared, own)...)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.OS, p.Architecture
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	return img
}

func reposMatching(names []string, q string) []string {
	var out []string
	for _, n := range names {
		if strings.Contains(n, q) {
			out = append(out, n)
		}
	}
	return out
}

// browserTab is one tab of a headless Chromium that the test started.
type browserTab struct {
	t      *testing.T
	ctx    context.Context // the tab's; every step derives its deadline from it
	errors *browserLog     // what the pages reported as errors: exceptions, CSP refusals
}

// openBrowser starts Chromium for the test, bounded by ctx, and stops it at cleanup.
func openBrowser(ctx context.Context, t *testing.T) *browserTab {
	t.Helper()
	chromium := testtool.Require(t, "chromium")
	out := &browserLog{}
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		// No connections of Chromium's own: this network refuses them, and the test
		// needs none (only 127.0.0.1).
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// /dev/shm is small in many containers; Chromium crashes when it fills up.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), // before the Cleanup below, so removed after Chromium ends
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(out),
	)
	tab, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for Chromium to exit
		if t.Failed() {
			t.Logf("chromium output (without its D-Bus complaints):\n%s", withoutLines(out.String(), "/dbus/"))
		}
	})
	start := time.Now()
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("start %s: %v\n%s", chromium, err, out)
	}
	t.Logf("chromium started in %v", time.Since(start).Round(time.Millisecond))
	b := &browserTab{t: t, ctx: tab, errors: &browserLog{}}
	// Errors of the pages' scripts and of the browser's checks (CSP); not failed loads,
	// which the 401 challenges and the missing favicon are.
	console := chromedp.Console(tab)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if (m.IsException() || m.Type == chromedp.ConsoleError) && m.Source != "network" {
				fmt.Fprintf(b.errors, "%s (%s:%d)\n", m.Text, m.URL, m.Line)
			}
		}
	}()
	t.Cleanup(func() {
		if t.Failed() && b.errors.String() != "" {
			t.Logf("errors the pages reported:\n%s", b.errors)
		}
	})
	return b
}

// do runs actions as one step.
func (b *browserTab) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
}

// open loads url and waits for its load event.
func (b *browserTab) open(url string) {
	b.t.Helper()
	b.do("open "+url, chromedp.Navigate(url))
}

// login answers the hub's Basic challenges with user and pass, as a user at the
// browser's login prompt does: requests go out without credentials, a 401 is answered,
// and the browser keeps the login for the requests that follow. It returns the count of
// challenges answered so far.
func (b *browserTab) login(user, pass string) *atomic.Int32 {
	b.t.Helper()
	var answered atomic.Int32
	paused := chromedp.Events(b.ctx, fetch.RequestPaused)
	challenged := chromedp.Events(b.ctx, fetch.AuthRequired)
	// Both loops end with the tab. An error of theirs leaves a request paused, which
	// fails the step that waits for it.
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(b.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range challenged {
			if err != nil {
				return
			}
			answered.Add(1)
			_, _ = chromedp.Call(b.ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{
				RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{
					Response: fetch.AuthChallengeResponseResponseProvideCredentials,
					Username: user, Password: pass,
				},
			})
		}
	}()
	b.do("answer login challenges", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, fetch.Enable, fetch.EnableParams{HandleAuthRequests: new(true)})
		return err
	}))
	return &answered
}

// retype replaces what #search holds with s as a user does: select all, delete, type.
func (b *browserTab) retype(s string) {
	b.t.Helper()
	b.do("clear #search",
		chromedp.Evaluate[chromedp.Void](`(e => { e.focus(); e.select(); })(document.getElementById("search"))`),
		chromedp.KeyEvent(kb.Backspace))
	if s != "" {
		b.do("type "+s+" into #search", chromedp.SendKeys(chromedp.ID("search"), s))
	}
	b.until("#search value", `document.getElementById("search").value`, s)
}

// eval evaluates JavaScript that yields a string.
func (b *browserTab) eval(expr string) string {
	b.t.Helper()
	v, err := b.tryEval(expr)
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browserTab) tryEval(expr string) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](expr))
}

// until evaluates expr (JavaScript that yields a string) until it yields want. When the
// step's time is up, it fails the test with what expr yielded last. Errors are retried:
// they come while a page loads.
func (b *browserTab) until(what, expr, want string) {
	b.t.Helper()
	deadline := time.Now().Add(browserStep)
	for {
		got, err := b.tryEval(expr)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			if err != nil {
				b.t.Fatalf("%s: want %q; evaluating %s: %v", what, want, expr, err)
			}
			b.t.Fatalf("%s: want %q, got %q", what, want, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// text is the rendered text of the first element sel matches; it waits for one.
func (b *browserTab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// nodes are the elements sel matches; it waits for at least one.
func (b *browserTab) nodes(sel string) []*chromedp.Node {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	ns, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(sel)))
	if err != nil {
		b.t.Fatalf("nodes %s: %v", sel, err)
	}
	return ns
}

// screenshot saves the whole page as a PNG file in dir and checks that it is one.
func (b *browserTab) screenshot(dir, file string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG, not JPEG
	require.NoError(b.t, err, "screenshot %s", file)
	p := filepath.Join(dir, file)
	require.NoError(b.t, os.WriteFile(p, shot, 0o644))
	b.t.Logf("screenshot: %s (%d bytes)", p, len(shot))

	data, err := os.ReadFile(p)
	require.NoError(b.t, err)
	require.True(b.t, bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")), "%s is no PNG file", p)
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(b.t, err, "%s", p)
	assert.False(b.t, img.Bounds().Empty(), "%s is an empty image", p)
}

// jsText yields the rendered text of the first element sel matches.
func jsText(sel string) string {
	return fmt.Sprintf(`(e => e ? (e.innerText ?? e.textContent).trim() : "<no element>")(document.querySelector(%s))`, jsQuote(sel))
}

// jsList yields the rendered texts of the elements sel matches, a line each.
func jsList(sel string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll(%s), e => (e.innerText ?? e.textContent).trim()).join("\n")`, jsQuote(sel))
}

// jsCount yields how many elements sel matches.
func jsCount(sel string) string {
	return fmt.Sprintf(`String(document.querySelectorAll(%s).length)`, jsQuote(sel))
}

// withoutLines drops the lines of s that contain sub.
func withoutLines(s, sub string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, sub) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func jsQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// browserLog is a buffer safe for concurrent writes (the hub's access log, Chromium's
// output).
type browserLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *browserLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *browserLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
