package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/testtool"
)

// The flags sealos users' build scripts pass (buildah's), each checked in the image built.

// compatEnv is a store and a context with a Kubefile, and helpers to build in them.
type compatEnv struct {
	t    *testing.T
	root string
	ctx  string
}

func newCompatEnv(t *testing.T, kubefile string) *compatEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		testtool.Missing(t, "builds run on the embedded BuildKit, which needs root (CI runs as root)")
	}
	sealosBin(t)
	e := &compatEnv{t: t, root: t.TempDir(), ctx: t.TempDir()}
	e.write("a.txt", "a\n")
	e.write("b.txt", "b\n")
	e.write("Kubefile", kubefile)
	return e
}

func (e *compatEnv) write(name, content string) {
	e.t.Helper()
	p := filepath.Join(e.ctx, name)
	require.NoError(e.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(e.t, os.WriteFile(p, []byte(content), 0o644))
}

func (e *compatEnv) sealos(env []string, args ...string) result {
	e.t.Helper()
	return sealos(e.t, append([]string{"BUILDKIT_HOST="}, env...), "", append([]string{"--root", e.root}, args...)...)
}

func (e *compatEnv) must(args ...string) result {
	e.t.Helper()
	r := e.sealos(nil, args...)
	require.NoError(e.t, r.err, "sealos %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	return r
}

// build runs `sealos build -o json ARGS... CONTEXT` and returns its result.
func (e *compatEnv) build(args ...string) buildResult {
	e.t.Helper()
	r := e.must(append(append([]string{"build", "--progress", "plain", "-o", "json"}, args...), e.ctx)...)
	var out buildResult
	require.NoError(e.t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	return out
}

// fails runs a build that must fail and returns its stderr.
func (e *compatEnv) fails(args ...string) string {
	e.t.Helper()
	r := e.sealos(nil, append(append([]string{"build"}, args...), e.ctx)...)
	require.Error(e.t, r.err, "sealos build %s must fail\nstdout: %s", strings.Join(args, " "), r.stdout)
	return r.stderr
}

type rawManifest struct {
	MediaType string `json:"mediaType"`
	Config    struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Layers []struct {
		MediaType string `json:"mediaType"`
	} `json:"layers"`
	Manifests []struct {
		Digest   string `json:"digest"`
		Platform struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
		} `json:"platform"`
	} `json:"manifests"`
	Annotations map[string]string `json:"annotations"`
}

func (e *compatEnv) manifest(ref string) rawManifest {
	e.t.Helper()
	var m rawManifest
	require.NoError(e.t, json.Unmarshal([]byte(e.must("manifest", "inspect", ref).stdout), &m))
	return m
}

type compatInspection struct {
	Created string            `json:"created"`
	Env     []string          `json:"env"`
	Labels  map[string]string `json:"labels"`
}

func (e *compatEnv) inspect(ref string) compatInspection {
	e.t.Helper()
	var out []compatInspection
	require.NoError(e.t, json.Unmarshal([]byte(e.must("inspect", ref).stdout), &out))
	require.Len(e.t, out, 1)
	return out[0]
}

// files unpacks ref and returns the files in it, relative to its root.
func (e *compatEnv) files(ref string) []string {
	e.t.Helper()
	dir := strings.TrimSpace(e.must("create", "--short", ref).stdout)
	defer e.must("rm", "--all")
	var out []string
	require.NoError(e.t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return err
	}))
	return out
}

const compatKubefile = `FROM scratch
ENV BASE=kubefile WHO=kubefile
LABEL sealos.io.type=application
COPY a.txt /a.txt
COPY b.txt /b.txt
`

func TestBuildCompatConfigFlags(t *testing.T) {
	e := newCompatEnv(t, compatKubefile)
	t.Setenv("FROM_HOST", "host-value")
	iid := filepath.Join(t.TempDir(), "iid")
	out := e.build("-t", "compat:v1", "--env", "WHO=flag", "--env", "EXTRA=1", "--env", "FROM_HOST", "--env", "UNSET_HERE",
		"--annotation", "org.example/owner=ops", "--isolation", "chroot", "--layers", "--rm", "--force-rm", "--iidfile", iid)
	ins := e.inspect("compat:v1")
	assert.Contains(t, ins.Env, "WHO=flag", "--env replaces the Kubefile's value")
	assert.Contains(t, ins.Env, "BASE=kubefile")
	assert.Contains(t, ins.Env, "EXTRA=1")
	assert.Contains(t, ins.Env, "FROM_HOST=host-value", "a bare KEY takes the environment's value")
	for _, kv := range ins.Env {
		assert.NotContains(t, kv, "UNSET_HERE", "an unset bare KEY is left out")
	}
	assert.Equal(t, "ops", e.manifest("compat:v1").Annotations["org.example/owner"])
	id, err := os.ReadFile(iid)
	require.NoError(t, err)
	assert.Equal(t, out.ID, string(id))
	assert.Contains(t, e.must("images", "--no-trunc").stdout, strings.TrimPrefix(out.ID, "sha256:"))

	// -q prints no progress; the result still goes to stdout.
	r := e.must("build", "-q", "-t", "compat:quiet", e.ctx)
	assert.NotContains(t, r.stderr, "#1 ", "no progress with -q")
	assert.Contains(t, r.stdout, "compat:quiet@sha256:")
}

func TestBuildCompatContextAndFiles(t *testing.T) {
	e := newCompatEnv(t, compatKubefile)
	// A Containerfile is found like a Kubefile, and CONTEXT defaults to the current directory.
	require.NoError(t, os.Rename(filepath.Join(e.ctx, "Kubefile"), filepath.Join(e.ctx, "Containerfile")))
	cmd := exec.Command(sealosBin(t), "--root", e.root, "build", "-q", "-t", "fromcwd:v1")
	cmd.Dir = e.ctx
	cmd.Env = append(os.Environ(), "BUILDKIT_HOST=")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.ElementsMatch(t, []string{"a.txt", "b.txt"}, e.files("fromcwd:v1"))
}

func TestBuildCompatLayersAndFormat(t *testing.T) {
	e := newCompatEnv(t, compatKubefile)
	e.build("-t", "base:v1")
	assert.Len(t, e.manifest("base:v1").Layers, 2)

	// --from replaces the first FROM; --squash makes base and new files one layer.
	e.write("Kubefile", "FROM scratch\nCOPY c.txt /c.txt\n")
	e.write("c.txt", "c\n")
	e.build("-t", "onbase:v1", "--from", "base:v1")
	assert.Len(t, e.manifest("onbase:v1").Layers, 3)
	e.build("-t", "squashed:v1", "--from", "base:v1", "--squash")
	sq := e.manifest("squashed:v1")
	assert.Len(t, sq.Layers, 1, "--squash")
	assert.ElementsMatch(t, []string{"a.txt", "b.txt", "c.txt"}, e.files("squashed:v1"))
	assert.Equal(t, "kubefile", strings.TrimPrefix(envOf(e.inspect("squashed:v1").Env, "BASE"), "BASE="), "the base's config is kept")

	// An image of one layer is squashed already: no second copy of its files.
	e.write("Kubefile", "FROM scratch\nCOPY c.txt /c.txt\n")
	r := e.must("build", "--progress", "plain", "--squash", "-t", "one:v1", e.ctx)
	assert.NotContains(t, r.stderr, "squash into one layer")
	assert.Len(t, e.manifest("one:v1").Layers, 1)

	// --format docker: Docker v2 media types and gzip layers; zstd cannot be docker.
	e.build("-t", "docker:v1", "--format", "docker")
	d := e.manifest("docker:v1")
	assert.Equal(t, "application/vnd.docker.distribution.manifest.v2+json", d.MediaType)
	assert.Equal(t, "application/vnd.docker.image.rootfs.diff.tar.gzip", d.Layers[0].MediaType)
	assert.Contains(t, e.fails("--format", "docker", "--compression", "zstd"), "no zstd layers")
	assert.Contains(t, e.fails("--format", "v3"), `--format "v3": use oci or docker`)

	// -D stores the layers uncompressed.
	e.build("-t", "plain:v1", "-D")
	assert.Equal(t, "application/vnd.oci.image.layer.v1.tar", e.manifest("plain:v1").Layers[0].MediaType)
}

func envOf(env []string, key string) string {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return kv
		}
	}
	return ""
}

// --timestamp gives the same digest twice, even after the files were touched.
func TestBuildCompatTimestamp(t *testing.T) {
	e := newCompatEnv(t, compatKubefile)
	a := e.build("-t", "ts:v1", "--timestamp", "1700000000")
	later := time.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(e.ctx, "a.txt"), later, later))
	b := e.build("-t", "ts:v1", "--timestamp", "1700000000", "--no-cache")
	assert.Equal(t, a.Digest, b.Digest)
	cached := e.build("-t", "ts:v1", "--timestamp", "1700000000")
	assert.Equal(t, a.Digest, cached.Digest, "a cached rebuild too")
	assert.Positive(t, cached.Cached)
	assert.True(t, strings.HasPrefix(e.inspect("ts:v1").Created, "2023-11-14T22:13:20"), e.inspect("ts:v1").Created)
	c := e.build("-t", "ts:v2", "--timestamp", "1700000001")
	assert.NotEqual(t, a.Digest, c.Digest)
	assert.Contains(t, e.fails("--timestamp", "1", "--build-arg", "SOURCE_DATE_EPOCH=2"), "disagree")
}

// --manifest gathers per-platform builds in a list; the manifest commands edit it and
// push it with its images, as crane and skopeo read back.
func TestBuildCompatManifestFlow(t *testing.T) {
	e := newCompatEnv(t, compatKubefile)
	bin := sealosBin(t)
	host := serveHub(t, bin)
	amd := e.build("--platform", "linux/amd64", "--manifest", "app:list")
	assert.Equal(t, "docker.io/library/app:list", strings.Replace(amd.Manifest, "app:list", "docker.io/library/app:list", 1))
	arm := e.build("--platform", "linux/arm64", "--manifest", "app:list")
	list := e.manifest("app:list")
	require.Len(t, list.Manifests, 2)
	got := map[string]string{}
	for _, m := range list.Manifests {
		got[m.Platform.OS+"/"+m.Platform.Architecture] = m.Digest
	}
	assert.Equal(t, map[string]string{"linux/amd64": amd.Digest, "linux/arm64": arm.Digest}, got)
	e.must("manifest", "exists", "app:list")
	r := e.sealos(nil, "manifest", "exists", "app:nosuch")
	var ee *exec.ExitError
	require.ErrorAs(t, r.err, &ee)
	assert.Equal(t, 1, ee.ExitCode())

	// The buildah flow: build per arch, create, add, annotate, push --all.
	e.build("-t", "app:amd64", "--platform", "linux/amd64")
	e.build("-t", "app:arm64", "--platform", "linux/arm64")
	e.must("manifest", "create", "app:v1")
	assert.Contains(t, e.sealos(nil, "manifest", "create", "app:v1").stderr, "already exists")
	e.must("manifest", "add", "app:v1", "app:amd64")
	armDigest := strings.TrimSpace(e.must("manifest", "add", "app:v1", "app:arm64").stdout)
	e.must("manifest", "annotate", "--variant", "v8", "--annotation", "tier=edge", "app:v1", armDigest)
	e.must("manifest", "annotate", "--index", "--annotation", "org.opencontainers.image.version=1.0", "app:v1")
	assert.Contains(t, e.sealos(nil, "manifest", "add", "app:nosuch", "app:amd64").stderr, "manifest create")
	assert.Contains(t, e.sealos(nil, "manifest", "add", "app:amd64", "app:arm64").stderr, "is an image, not a manifest list")
	v1 := e.manifest("app:v1")
	require.Len(t, v1.Manifests, 2)
	assert.Equal(t, "1.0", v1.Annotations["org.opencontainers.image.version"])
	assert.Contains(t, e.must("images").stdout, "v1")

	dst := host + "/team/app:v1"
	digestFile := filepath.Join(t.TempDir(), "digest")
	push := e.must("manifest", "push", "--all", "--digestfile", digestFile, "app:v1", dst)
	pushed, err := os.ReadFile(digestFile)
	require.NoError(t, err)
	assert.Contains(t, push.stdout, string(pushed))

	craneRaw, err := exec.Command(testtool.Require(t, "crane"), "manifest", "--insecure", dst).Output()
	require.NoError(t, err)
	skopeoRaw, err := exec.Command(testtool.Require(t, "skopeo"), "inspect", "--raw", "--tls-verify=false", "docker://"+dst).Output()
	require.NoError(t, err)
	local := e.must("manifest", "inspect", "app:v1").stdout
	var a, b, c any
	require.NoError(t, json.Unmarshal(craneRaw, &a))
	require.NoError(t, json.Unmarshal(skopeoRaw, &b))
	require.NoError(t, json.Unmarshal([]byte(local), &c))
	assert.Equal(t, c, a, "crane reads the list pushed")
	assert.Equal(t, c, b, "skopeo reads the list pushed")
	assert.Contains(t, string(craneRaw), `"variant":"v8"`)
	// Each platform's image is in the registry too.
	for _, m := range v1.Manifests {
		_, err := exec.Command("crane", "manifest", "--insecure", host+"/team/app@"+m.Digest).Output()
		assert.NoError(t, err, "image %s pushed with the list", m.Digest)
	}
	// inspect reads a list the store does not hold from its registry.
	assert.Contains(t, e.must("manifest", "inspect", "--tls-verify=false", dst).stdout, armDigest)

	e.must("manifest", "push", "--rm", "app:v1", dst)
	assert.Error(t, e.sealos(nil, "manifest", "exists", "app:v1").err)
	assert.Contains(t, e.must("images").stdout, "arm64", "the images of a removed list stay")
	assert.Contains(t, e.sealos(nil, "manifest", "rm", "app:amd64").stderr, "use 'sealos rmi'")
	e.must("manifest", "rm", "app:list")

	// --all-platforms builds for the platforms the FROM images share.
	e.must("manifest", "create", "base:multi", "app:amd64", "app:arm64")
	e.write("Kubefile", "FROM base:multi\nCOPY c.txt /c.txt\n")
	e.write("c.txt", "c\n")
	all := e.build("-t", "multi:v1", "--all-platforms")
	m := e.manifest("multi:v1")
	var plats []string
	for _, d := range m.Manifests {
		plats = append(plats, d.Platform.OS+"/"+d.Platform.Architecture)
	}
	assert.ElementsMatch(t, []string{"linux/amd64", "linux/arm64"}, plats, all.Digest)
	e.write("Kubefile", compatKubefile)
	assert.Contains(t, e.fails("--all-platforms"), "FROM scratch")
}

// --pull chooses where FROM images come from; --creds and --authfile log in for them.
func TestBuildCompatPullAndCreds(t *testing.T) {
	e := newCompatEnv(t, compatKubefile)
	bin := sealosBin(t)
	host := loginHub(t, bin)
	loggedIn := t.TempDir()
	login := []string{"DOCKER_CONFIG=" + loggedIn}
	noLogin := []string{"DOCKER_CONFIG=" + t.TempDir()}
	mustEnv := func(env []string, args ...string) result {
		t.Helper()
		r := e.sealos(env, args...)
		require.NoError(t, r.err, "sealos %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
		return r
	}
	buildEnv := func(env []string, args ...string) result {
		t.Helper()
		return e.sealos(env, append(append([]string{"build", "--progress", "plain"}, args...), e.ctx)...)
	}

	base := host + "/base/img:v1"
	e.build("-t", base)
	mustEnv(login, "login", "-u", "admin", "-p", "s3cret", host)
	mustEnv(login, "push", "--quiet", base)
	e.must("rmi", base)
	e.write("Kubefile", "FROM "+base+"\nCOPY c.txt /c.txt\n")
	e.write("c.txt", "c\n")

	r := buildEnv(noLogin, "-t", "on:never", "--pull", "never")
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "--pull never", r.stderr)
	r = buildEnv(noLogin, "-t", "on:anon")
	require.Error(t, r.err, "the hub wants a login")
	// The engine pulls FROM images with the logins given.
	r = buildEnv(noLogin, "-t", "on:creds", "--creds", "admin:s3cret")
	require.NoError(t, r.err, r.stderr)
	assert.ElementsMatch(t, []string{"a.txt", "b.txt", "c.txt"}, e.files("on:creds"))
	assert.NotContains(t, e.must("images").stdout, host+"/base/img", "--pull missing leaves the base to the engine")
	// --pull always pulls into the store first, with --authfile's login.
	r = buildEnv(noLogin, "-t", "on:always", "--pull", "always", "--authfile", filepath.Join(loggedIn, "config.json"))
	require.NoError(t, r.err, r.stderr)
	assert.Contains(t, e.must("images").stdout, host+"/base/img")
	r = buildEnv(noLogin, "-t", "on:never", "--pull=never")
	require.NoError(t, r.err, "the base is in the store now: %s", r.stderr)
	r = buildEnv(noLogin, "-t", "on:newer", "--pull", "--creds", "admin:s3cret")
	require.NoError(t, r.err, "bare --pull means true (newer): %s", r.stderr)

	assert.Contains(t, e.fails("--pull=sometimes"), "use always, missing, newer (true), never or false")
	assert.Contains(t, e.fails("--creds", ":pw"), "want USERNAME[:PASSWORD]")
	assert.Contains(t, e.fails("--authfile", "/nonexistent/auth.json"), "--authfile")
}

// --retry is how often a failed pull is tried again.
func TestBuildCompatRetry(t *testing.T) {
	e := newCompatEnv(t, compatKubefile)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	e.write("Kubefile", "FROM "+strings.TrimPrefix(srv.URL, "http://")+"/flaky/base:v1\nCOPY a.txt /a.txt\n")
	attempts := func(retry string) int64 {
		hits.Store(0)
		e.fails("--pull", "always", "--retry", retry, "--retry-delay", "10ms")
		return hits.Load()
	}
	none, two := attempts("0"), attempts("2")
	assert.Positive(t, none)
	assert.Equal(t, 3*none, two, "--retry 2 tries each request three times")
}

// Flags sealos has that cannot be honoured are refused with what to do instead.
func TestBuildCompatRefusals(t *testing.T) {
	e := newCompatEnv(t, compatKubefile)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--sign-by", "ABCD"}, "--sign-by is not supported by sealos build: signing is not built in"},
		{[]string{"--cache-from", "type=registry,ref=x"}, "--cache-from is not supported"},
		{[]string{"-v", "/tmp:/tmp"}, "COPY the files into the image"},
		{[]string{"--http-proxy"}, "--build-arg HTTP_PROXY"},
		{[]string{"--network", "host"}, "RUN's container settings"},
		{[]string{"-o", "type=local,dest=out"}, "'sealos save' writes it to an archive"},
		{[]string{"--isolation", "vm"}, "use oci, chroot or rootless"},
		{[]string{"--max-pull-procs", "0"}, "--max-pull-procs 0: give at least 1"},
		{[]string{"--retry", "-1"}, "--retry -1"},
		{[]string{"--arch", "arm64", "--platform", "linux/amd64"}, "give one of them"},
		{[]string{"--env", "=x"}, "want KEY=VALUE"},
		{[]string{"--annotation", "novalue"}, "want KEY=VALUE"},
		{[]string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
	} {
		assert.Contains(t, e.fails(c.args...), c.want, "%v", c.args)
	}
	// --arch alone builds for that architecture.
	e.build("-t", "arm:v1", "--arch", "arm64")
	assert.Contains(t, e.must("inspect", "arm:v1").stdout, `"arm64"`)
}

// A *.tmpl manifest is rendered with the env the Kubefile gives the image (and --env)
// to find its images, as apply will render it.
func TestBuildImagesFromTemplatesWithKubefileEnv(t *testing.T) {
	ctx := t.TempDir()
	for name, content := range map[string]string{
		"Kubefile":                "FROM scratch\nARG VERSION=v1\nENV REGISTRY=hub.example.com VERSION=${VERSION}\nCOPY . .\n",
		"manifests/app.yaml.tmpl": "apiVersion: v1\nkind: Pod\nmetadata: {name: app}\nspec:\n  containers:\n  - name: app\n    image: {{ .REGISTRY }}/team/app:{{ .VERSION }}\n  - name: side\n    image: {{ .SIDE }}/side:v1\n",
	} {
		p := filepath.Join(ctx, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	r := mustSealos(t, nil, "", "--root", t.TempDir(), "build", "--images-only", "--build-arg", "VERSION=v2", "--env", "SIDE=mirror.example.com", ctx)
	assert.Contains(t, r.stdout, "hub.example.com/team/app:v2")
	assert.Contains(t, r.stdout, "mirror.example.com/side:v1")
}

// registry images renders *.tmpl with the context's Kubefile too.
func TestRegistryImagesRendersTemplatesWithKubefileEnv(t *testing.T) {
	ctx := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(ctx, "manifests"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "Kubefile"), []byte("FROM scratch\nENV REGISTRY=hub.example.com\nCOPY . .\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "manifests", "pod.yaml.tmpl"), []byte("kind: Pod\nspec:\n  containers:\n  - image: {{ .REGISTRY }}/team/tool:v3\n"), 0o644))
	assert.Contains(t, mustSealos(t, nil, "", "registry", "images", ctx).stdout, "hub.example.com/team/tool:v3")
}

// A COPY of a path transfers that path only: the rest of the context (here 8 MiB nobody
// copies) is neither sent to the engine nor stored in its cache.
func TestBuildTransfersOnlyCopiedPaths(t *testing.T) {
	e := newCompatEnv(t, "FROM scratch\nCOPY charts charts\nCOPY a.txt /a.txt\n")
	e.write("charts/app/Chart.yaml", "name: app\n")
	e.write("unused/big", strings.Repeat("x", 8<<20))
	r := e.must("build", "--progress", "plain", "-t", "only:v1", e.ctx)
	assert.NotContains(t, r.stderr, "MB", "nothing of megabytes is transferred:\n"+r.stderr)
	assert.ElementsMatch(t, []string{"a.txt", "charts/app/Chart.yaml"}, e.files("only:v1"))
	// unchanged: every step from the cache
	again := e.build("-t", "only:v1")
	assert.Equal(t, again.Steps, again.Cached)
}
