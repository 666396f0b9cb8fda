package buildkit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cluster-image/sealos/builder/frontend"
	"github.com/cluster-image/sealos/store"
	"github.com/gofrs/flock"
	"github.com/moby/buildkit/client/llb"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/testtool"
)

// testFrontend is a hand-made frontend: it copies the context into scratch and, when the
// build-arg RUN is set, runs it with the context's busybox. The real Kubefile frontend is
// tested in builder/frontend and end to end in test/e2e.
func testFrontend(ctx context.Context, c gwclient.Client) (*gwclient.Result, error) {
	opts := c.BuildOpts().Opts
	src := llb.Local(LocalContext, llb.SharedKeyHint(LocalContext))
	st := llb.Scratch().File(llb.Copy(src, "/", "/", &llb.CopyInfo{CopyDirContentsOnly: true}), llb.WithCustomName("COPY . /"))
	if cmd := opts[AttrBuildArg+"RUN"]; cmd != "" {
		st = st.Run(llb.Args([]string{"/busybox", "sh", "-c", cmd}), llb.WithCustomName("RUN "+cmd)).Root()
	}
	def, err := st.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	r, err := c.Solve(ctx, gwclient.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	ref, err := r.SingleRef()
	if err != nil {
		return nil, err
	}
	img := dockerspec.DockerOCIImage{}
	img.OS, img.Architecture = "linux", "amd64"
	img.RootFS.Type = "layers"
	img.Config.Labels = map[string]string{}
	for k, v := range opts {
		if name, ok := strings.CutPrefix(k, AttrLabel); ok {
			img.Config.Labels[name] = v
		}
	}
	img.Config.Cmd = []string{"echo", "hi"}
	cfg, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	res := gwclient.NewResult()
	res.SetRef(ref)
	res.AddMeta("containerimage.config", cfg)
	return res, nil
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testtool.Missing(t, "the embedded BuildKit needs root (CI runs as root)")
	}
}

func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
	}
	return dir
}

// engines runs fn against the embedded controller and against a separate daemon reached by
// its address, the two ways `sealos build` reaches BuildKit.
func engines(t *testing.T, fn func(t *testing.T, connect func() *Engine)) {
	needRoot(t)
	t.Run("embedded", func(t *testing.T) {
		// One embedded controller per process and state directory (see StartDaemon); that a
		// new process finds the cache is tested with the real binary in test/e2e.
		e, err := Connect(context.Background(), "", DaemonOptions{Root: t.TempDir()}, nil)
		require.NoError(t, err)
		assert.False(t, e.Remote())
		t.Cleanup(func() { assert.NoError(t, e.Close()) })
		fn(t, func() *Engine { return e })
	})
	t.Run("remote", func(t *testing.T) {
		d, err := StartDaemon(context.Background(), DaemonOptions{Root: t.TempDir()}, nil)
		require.NoError(t, err)
		t.Cleanup(func() { d.Close() })
		fn(t, func() *Engine {
			e, err := Connect(context.Background(), d.Addr(), DaemonOptions{Root: "/nonexistent"}, nil)
			require.NoError(t, err)
			assert.True(t, e.Remote())
			t.Cleanup(func() { assert.NoError(t, e.Close()) })
			return e
		})
	})
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.OpenDir(t.TempDir())
	require.NoError(t, err)
	return s
}

func readIndex(t *testing.T, dir string) ocispecs.Index {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	require.NoError(t, err)
	var idx ocispecs.Index
	require.NoError(t, json.Unmarshal(b, &idx))
	return idx
}

func TestBuildAndRebuildCached(t *testing.T) {
	engines(t, func(t *testing.T, connect func() *Engine) {
		ctxDir := writeContext(t, map[string]string{
			"Kubefile":           "FROM scratch\nCOPY . .\n",
			"manifests/app.yaml": "kind: ConfigMap\n",
			"bin/tool":           "#!/bin/sh\n",
		})
		st, err := store.OpenDir(filepath.Join(t.TempDir(), "store"))
		require.NoError(t, err)
		storeDir := st.Dir()
		opt := BuildOptions{
			ContextDir: ctxDir, File: filepath.Join(ctxDir, "Kubefile"),
			Tags:   []string{"docker.io/library/app:v1", "localhost:5000/app:v1"},
			Labels: map[string]string{"sealos.io.type": "application"},
			Store:  st, Frontend: testFrontend, Progress: "plain",
		}
		var out bytes.Buffer
		opt.ProgressOut = &out

		e := connect()
		res, err := e.Build(context.Background(), opt)
		require.NoError(t, err, out.String())
		assert.Equal(t, ocispecs.MediaTypeImageManifest, res.Descriptor.MediaType)
		assert.Equal(t, 1, res.Steps)
		assert.Equal(t, 0, res.Cached)

		idx := readIndex(t, storeDir)
		require.Len(t, idx.Manifests, 2)
		names := map[string]string{}
		for _, m := range idx.Manifests {
			assert.Equal(t, res.Descriptor.Digest, m.Digest)
			names[m.Annotations[store.AnnotationImageName]] = m.Annotations[ocispecs.AnnotationRefName]
		}
		assert.Equal(t, map[string]string{"docker.io/library/app:v1": "v1", "localhost:5000/app:v1": "v1"}, names)
		_, err = os.Stat(filepath.Join(storeDir, "blobs", res.Descriptor.Digest.Algorithm().String(), res.Descriptor.Digest.Encoded()))
		require.NoError(t, err)

		// A new connection (a new process, for the embedded case) hits the cache.
		out.Reset()
		e = connect()
		res2, err := e.Build(context.Background(), opt)
		require.NoError(t, err, out.String())
		assert.Equal(t, res.Descriptor.Digest, res2.Descriptor.Digest)
		assert.Equal(t, res2.Steps, res2.Cached, out.String())
		assert.Contains(t, out.String(), "CACHED")
		assert.Len(t, readIndex(t, storeDir).Manifests, 2)

		// A changed file invalidates the step.
		require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "bin/tool"), []byte("changed"), 0o644))
		e = connect()
		res3, err := e.Build(context.Background(), opt)
		require.NoError(t, err)
		assert.NotEqual(t, res.Descriptor.Digest, res3.Descriptor.Digest)
		assert.Equal(t, 0, res3.Cached)
	})
}

func busyboxContext(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		testtool.Missing(t, "needs Debian's busybox-static for a RUN base (apt-get install busybox-static)")
	}
	data, err := os.ReadFile(bb)
	require.NoError(t, err)
	dir := writeContext(t, map[string]string{"Kubefile": "FROM scratch\n"})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "busybox"), data, 0o755))
	return dir
}

func TestBuildRun(t *testing.T) {
	if _, err := exec.LookPath("runc"); err != nil {
		testtool.Missing(t, "RUN needs runc (apt-get install runc)")
	}
	engines(t, func(t *testing.T, connect func() *Engine) {
		ctxDir := busyboxContext(t)
		var out bytes.Buffer
		e := connect()
		_, err := e.Build(context.Background(), BuildOptions{
			ContextDir: ctxDir, File: filepath.Join(ctxDir, "Kubefile"),
			Tags:      []string{"docker.io/library/run:v1"},
			BuildArgs: map[string]string{"RUN": "/busybox mkdir -p /out && /busybox echo built-by-run > /out/x && /busybox echo from-run-step"},
			Store:     newStore(t), Frontend: testFrontend, Progress: "plain", ProgressOut: &out,
		})
		require.NoError(t, err, out.String())
		assert.Contains(t, out.String(), "from-run-step")
	})
}

func TestBuildWithoutRunc(t *testing.T) {
	needRoot(t)
	// A PATH without runc: the worker comes up, builds without RUN work, RUN says what to
	// install.
	ctxDir := busyboxContext(t)
	t.Setenv("PATH", t.TempDir())
	e, err := Connect(context.Background(), "", DaemonOptions{Root: t.TempDir()}, nil)
	require.NoError(t, err)
	defer e.Close()
	assert.False(t, e.daemon.HasRunc())
	build := func(run string) error {
		_, err = e.Build(context.Background(), BuildOptions{
			ContextDir: ctxDir, File: filepath.Join(ctxDir, "Kubefile"), Tags: []string{"docker.io/library/x:y"},
			BuildArgs: map[string]string{"RUN": run},
			Store:     newStore(t), Frontend: testFrontend, Progress: "quiet",
		})
		return err
	}
	require.NoError(t, build(""))
	err = build("/busybox true")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "apt-get install runc")
}

func TestSecondOpenWaits(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	d, err := StartDaemon(context.Background(), DaemonOptions{Root: root}, nil)
	require.NoError(t, err)
	defer d.Close()
	// Another process holding the state directory is seen through its lock file.
	lock := flock.New(filepath.Join(root, "buildkitd.lock"))
	ok, err := lock.TryLock()
	require.NoError(t, err)
	assert.False(t, ok, "the state directory is locked while a daemon runs")

	other := t.TempDir()
	held := flock.New(filepath.Join(other, "buildkitd.lock"))
	ok, err = held.TryLock()
	require.NoError(t, err)
	require.True(t, ok)
	ctx, cancel := context.WithCancel(context.Background())
	var msg string
	_, err = StartDaemon(ctx, DaemonOptions{Root: other}, func(m string) { msg = m; cancel() })
	require.Error(t, err)
	assert.Contains(t, msg, "waiting for another sealos process")
	require.NoError(t, held.Unlock())

	_, err = StartDaemon(context.Background(), DaemonOptions{Root: root}, nil)
	assert.ErrorContains(t, err, "already opened by this process")
}

func TestBadOptions(t *testing.T) {
	_, err := exportAttrs(BuildOptions{Compression: "lz4"})
	assert.ErrorContains(t, err, "unknown compression")
	a, err := exportAttrs(BuildOptions{})
	require.NoError(t, err)
	assert.Equal(t, "zstd", a["compression"])
	assert.Equal(t, "1", a["compression-level"])
	_, err = Connect(context.Background(), "no-scheme", DaemonOptions{}, nil)
	assert.ErrorContains(t, err, "no scheme")
}

// TestKubefileFromLocalStore builds with the real Kubefile frontend: a base image into the
// store, then an image FROM it, which must come from the store (no registry is reachable).
func TestKubefileFromLocalStore(t *testing.T) {
	engines(t, func(t *testing.T, connect func() *Engine) {
		st := newStore(t)
		base := writeContext(t, map[string]string{
			"Kubefile":      "FROM scratch\nLABEL sealos.io.type=rootfs sealos.io.version=v1beta1\nENV registryPort=5001\nCOPY etc etc\n",
			"etc/a.tmpl":    "port={{ .registryPort }}\n",
			"scripts/x.sh":  "echo\n",
			"ignored/never": "x",
		})
		e := connect()
		var out bytes.Buffer
		res, err := e.Build(context.Background(), BuildOptions{
			ContextDir: base, File: filepath.Join(base, "Kubefile"), Tags: []string{"docker.io/library/base:v1"},
			Store: st, Frontend: frontend.Build, Progress: "plain", ProgressOut: &out,
		})
		require.NoError(t, err, out.String())
		assert.Equal(t, 1, res.Steps, out.String())

		app := writeContext(t, map[string]string{
			"Kubefile":         "FROM base:v1\nCOPY manifests manifests\nCMD [\"kubectl apply -f manifests\"]\n",
			"manifests/a.yaml": "kind: ConfigMap\n",
		})
		out.Reset()
		res, err = e.Build(context.Background(), BuildOptions{
			ContextDir: app, File: filepath.Join(app, "Kubefile"), Tags: []string{"docker.io/library/app:v1"},
			Store: st, Frontend: frontend.Build, Progress: "plain", ProgressOut: &out,
		})
		require.NoError(t, err, out.String())
		img, err := st.Image(context.Background(), "app:v1")
		require.NoError(t, err)
		cfg, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, "rootfs", cfg.Config.Labels["sealos.io.type"])
		assert.Contains(t, cfg.Config.Env, "registryPort=5001")
		layers, err := img.Layers()
		require.NoError(t, err)
		assert.Len(t, layers, 2)
		mt, err := layers[1].MediaType()
		require.NoError(t, err)
		assert.Equal(t, "application/vnd.oci.image.layer.v1.tar+zstd", string(mt))
	})
}

func TestIsInternalStep(t *testing.T) {
	for name, internal := range map[string]bool{
		"[internal] load build context":                                     true,
		"[internal] load metadata for docker.io/library/busybox:latest":     true,
		"[context base:v1] load metadata for docker.io/library/base:v1@sha": true,
		"[context base:v1] OCI load from client":                            true,
		"exporting to oci image format":                                     true,
		"[stage-0 2/3] COPY manifests manifests":                            false,
		"[base 2/2] RUN [\"/bin/busybox\", \"--install\"]":                  false,
		"[stage-0 1/3] FROM docker.io/library/base:v1@sha256:abc":           false,
		"COPY . /": false,
	} {
		assert.Equal(t, internal, IsInternalStep(name), name)
	}
}
