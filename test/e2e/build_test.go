// Package e2e drives the real sealos binary end to end: $SEALOS_BIN (set by `make test`),
// or a binary built from this tree when it is unset.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cluster-image/sealos/builder/buildkit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/testtool"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// sealosBin is $SEALOS_BIN, or a binary built once from this tree.
func sealosBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("SEALOS_BIN"); b != "" {
		return b
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sealos-e2e-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "sealos")
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/sealos")
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testtool.Missing(t, "builds run on the embedded BuildKit, which needs root (CI runs as root)")
	}
}

type result struct {
	stdout, stderr string
	err            error
}

func (r result) String() string { return "stdout:\n" + r.stdout + "\nstderr:\n" + r.stderr }

// engine is how a test reaches BuildKit: the embedded one, or a second sealos process
// serving it (`sealos buildkitd`).
type engine struct {
	name string
	env  []string
}

func (e engine) sealos(t *testing.T, root string, args ...string) result {
	t.Helper()
	return run(t, e.env, append([]string{"--root", root}, args...)...)
}

func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(sealosBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return result{out.String(), errb.String(), err}
}

// startBuildkitd runs `sealos buildkitd` with its own state and returns its address.
func startBuildkitd(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "bk.sock")
	cmd := exec.Command(sealosBin(t), "--root", filepath.Join(dir, "root"), "buildkitd", "--addr", "unix://"+sock)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "serving unix://") {
			go func() {
				for sc.Scan() {
				}
			}()
			return "unix://" + sock
		}
	}
	t.Fatalf("sealos buildkitd exited before serving")
	return ""
}

// engines runs fn on the embedded engine and on a remote one.
func engines(t *testing.T, fn func(t *testing.T, e engine)) {
	needRoot(t)
	t.Run("embedded", func(t *testing.T) { fn(t, engine{name: "embedded", env: []string{"BUILDKIT_HOST="}}) })
	t.Run("remote", func(t *testing.T) {
		addr := startBuildkitd(t)
		fn(t, engine{name: "remote", env: []string{"BUILDKIT_HOST=" + addr}})
	})
}

func examplesDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "examples")
}

// exampleContext returns the build context of an example; busybox gets Debian's
// busybox-static binary copied in (it is not committed).
func exampleContext(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(examplesDir(t), name)
	if name != "busybox" {
		return dir
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		testtool.Missing(t, "examples/busybox needs Debian's busybox-static (apt-get install busybox-static)")
	}
	ctx := t.TempDir()
	require.NoError(t, exec.Command("cp", "-r", dir+"/.", ctx).Run())
	require.NoError(t, exec.Command("cp", bb, filepath.Join(ctx, "busybox")).Run())
	return ctx
}

type inspection struct {
	Names  []string          `json:"names"`
	Digest string            `json:"digest"`
	Type   string            `json:"type"`
	Valid  bool              `json:"valid"`
	Labels map[string]string `json:"labels"`
	Env    []string          `json:"env"`
	Cmd    []string          `json:"cmd"`
}

func inspect(t *testing.T, e engine, root, ref string) inspection {
	t.Helper()
	r := e.sealos(t, root, "inspect", ref)
	require.NoError(t, r.err, r)
	var out []inspection
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	require.Len(t, out, 1)
	return out[0]
}

type buildOut struct {
	Tags   []string `json:"tags"`
	Digest string   `json:"digest"`
	Steps  int      `json:"steps"`
	Cached int      `json:"cached"`
}

func build(t *testing.T, e engine, root string, args ...string) (buildOut, result) {
	t.Helper()
	r := e.sealos(t, root, append([]string{"build", "--progress", "plain", "--output", "json"}, args...)...)
	require.NoError(t, r.err, r)
	var out buildOut
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r)
	return out, r
}

var vertexLine = regexp.MustCompile(`(?m)^#(\d+) (\[[^\]]+\] .*)$`)

// uncachedSteps lists the build steps of a plain progress log that did not report CACHED
// (BuildKit's bookkeeping steps, which load the context or a base image's metadata, never
// do and are left out).
func uncachedSteps(log string) (steps, uncached []string) {
	seen := map[string]bool{}
	for _, m := range vertexLine.FindAllStringSubmatch(log, -1) {
		id, name := m[1], m[2]
		if buildkit.IsInternalStep(name) || seen[id] {
			continue
		}
		seen[id] = true
		steps = append(steps, name)
		if !strings.Contains(log, "\n#"+id+" CACHED\n") {
			uncached = append(uncached, name)
		}
	}
	return steps, uncached
}

func TestBuildExamples(t *testing.T) {
	want := map[string]struct {
		typ    string
		labels map[string]string
		env    []string
		cmd    []string
	}{
		"app": {
			typ:    "application",
			labels: map[string]string{"sealos.io.type": "application"},
			env:    []string{"NAMESPACE=hello", "REPLICAS=2"},
			cmd:    []string{"kubectl apply -f manifests/", "helm upgrade -i hello charts/hello -n $(NAMESPACE) --create-namespace --set replicaCount=$(REPLICAS)"},
		},
		"rootfs": {
			typ:    "rootfs",
			labels: map[string]string{"sealos.io.type": "rootfs", "sealos.io.version": "v1beta1", "init": "bash init.sh"},
			env:    []string{"registryDomain=sealos.hub", "registryPort=5000", "registryUsername=admin", "registryData=/var/lib/registry", "registryPassword=passw0rd", "rootfsVersion=v0.1.0"},
			cmd:    []string{"bash scripts/show-info.sh"},
		},
		"busybox": {
			typ:    "patch",
			labels: map[string]string{"sealos.io.type": "patch"},
			env:    []string{"EXAMPLE_HOME=/opt/example"},
			cmd:    []string{"cat /opt/example/greeting.txt"},
		},
	}
	engines(t, func(t *testing.T, e engine) {
		root := t.TempDir()
		for _, name := range []string{"app", "rootfs", "busybox"} {
			t.Run(name, func(t *testing.T) {
				if name == "busybox" {
					if _, err := exec.LookPath("runc"); err != nil {
						testtool.Missing(t, "examples/busybox uses RUN, which needs runc (apt-get install runc)")
					}
				}
				ctx := exampleContext(t, name)
				ref := "example-" + name + ":v1"
				first, r := build(t, e, root, "-t", ref, ctx)
				assert.Equal(t, []string{"docker.io/library/" + ref}, first.Tags)
				assert.Positive(t, first.Steps, r)
				if name == "busybox" {
					assert.Contains(t, r.stderr, "RUN", r)
				}

				ins := inspect(t, e, root, ref)
				assert.Equal(t, want[name].typ, ins.Type)
				assert.True(t, ins.Valid)
				for k, v := range want[name].labels {
					assert.Equal(t, v, ins.Labels[k], "label %s", k)
				}
				for _, kv := range want[name].env {
					assert.Contains(t, ins.Env, kv)
				}
				assert.Equal(t, want[name].cmd, ins.Cmd)

				// An unchanged rebuild: every step comes from the cache.
				again, r := build(t, e, root, "-t", ref, ctx)
				assert.Equal(t, again.Steps, again.Cached, r)
				steps, uncached := uncachedSteps(r.stderr)
				assert.NotEmpty(t, steps, r)
				assert.Empty(t, uncached, r)
			})
		}
	})
}

func TestBuildFromLocalStore(t *testing.T) {
	engines(t, func(t *testing.T, e engine) {
		root := t.TempDir()
		build(t, e, root, "-t", "example-rootfs:v1", filepath.Join(examplesDir(t), "rootfs"))
		ctx := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(ctx, "manifests"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(ctx, "manifests", "x.yaml"), []byte("kind: ConfigMap\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(ctx, "Sealfile"), []byte(
			"FROM example-rootfs:v1\nENV registryPort=5050\nCOPY manifests manifests\n"), 0o644))
		_, r := build(t, e, root, "-t", "localhost:5000/derived:v2", "--label", "team=ops", ctx)
		ins := inspect(t, e, root, "localhost:5000/derived:v2")
		assert.Equal(t, "rootfs", ins.Type, r)
		assert.Equal(t, "ops", ins.Labels["team"])
		assert.Contains(t, ins.Env, "registryPort=5050")
		assert.Contains(t, ins.Env, "registryDomain=sealos.hub")
		assert.Equal(t, []string{"bash scripts/show-info.sh"}, ins.Cmd)

		// Unchanged: every step cached, the local base image included.
		again, r := build(t, e, root, "-t", "localhost:5000/derived:v2", "--label", "team=ops", ctx)
		assert.Equal(t, again.Steps, again.Cached, r)
		steps, uncached := uncachedSteps(r.stderr)
		assert.NotEmpty(t, steps, r)
		assert.Empty(t, uncached, r)
	})
}

// TestBuildWithoutRunc: on a machine without runc, builds without RUN work and RUN fails
// naming the package to install.
func TestBuildWithoutRunc(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("busybox"); err != nil {
		testtool.Missing(t, "needs Debian's busybox-static (apt-get install busybox-static)")
	}
	e := engine{name: "no-runc", env: []string{"BUILDKIT_HOST=", "PATH=" + t.TempDir()}}
	root := t.TempDir()
	build(t, e, root, "-t", "app:v1", filepath.Join(examplesDir(t), "app"))
	r := e.sealos(t, root, "build", "--progress", "plain", "-t", "bb:v1", exampleContext(t, "busybox"))
	require.Error(t, r.err, r)
	assert.Contains(t, r.stderr, "apt-get install runc", r)
}

// TestConcurrentBuildsOneRoot: two sealos build processes on one --root both succeed; the
// second waits for the first's engine.
func TestConcurrentBuildsOneRoot(t *testing.T) {
	needRoot(t)
	e := engine{name: "embedded", env: []string{"BUILDKIT_HOST="}}
	root := t.TempDir()
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i, ex := range []string{"app", "rootfs"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.sealos(t, root, "build", "--progress", "quiet", "-t", "c-"+ex+":v1", filepath.Join(examplesDir(t), ex))
		}()
	}
	wg.Wait()
	for _, r := range results {
		require.NoError(t, r.err, r)
	}
	r := e.sealos(t, root, "images", "--output", "json")
	require.NoError(t, r.err, r)
	assert.Contains(t, r.stdout, "c-app")
	assert.Contains(t, r.stdout, "c-rootfs")
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Kubefile"), []byte("FROM scratch\nCOPPY a b\n"), 0o644))
	e := engine{env: []string{"BUILDKIT_HOST="}}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown instruction", []string{dir}, "Kubefile:2"},
		{"no context", []string{filepath.Join(dir, "missing")}, "no such file"},
		{"no kubefile", []string{t.TempDir()}, "no Kubefile, Sealfile, Dockerfile or Containerfile"},
		{"bad tag", []string{"-t", "UPPER:case", dir}, "-t"},
		{"bad build arg", []string{"--build-arg", "=x", dir}, "--build-arg"},
		{"bad compression", []string{"--compression", "lz4", "-f", filepath.Join(examplesDir(t), "app", "Kubefile"), filepath.Join(examplesDir(t), "app")}, "unknown compression"},
		{"bad progress", []string{"--progress", "fancy", "-f", filepath.Join(examplesDir(t), "app", "Kubefile"), filepath.Join(examplesDir(t), "app")}, "fancy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.sealos(t, t.TempDir(), append([]string{"build"}, tc.args...)...)
			require.Error(t, r.err, r)
			assert.Contains(t, r.stderr, tc.want, r)
		})
	}
}

// TestBuildReproducible: with SOURCE_DATE_EPOCH, two builds from empty state (different
// roots, so nothing is shared) give the same manifest digest.
func TestBuildReproducible(t *testing.T) {
	needRoot(t)
	e := engine{name: "embedded", env: []string{"BUILDKIT_HOST=", "SOURCE_DATE_EPOCH=1700000000"}}
	ctx := filepath.Join(examplesDir(t), "rootfs")
	a, r := build(t, e, t.TempDir(), "-t", "repro:v1", ctx)
	b, _ := build(t, e, t.TempDir(), "-t", "repro:v1", ctx)
	assert.Equal(t, a.Digest, b.Digest, r)
}

// TestBuildFlags: --build-arg, --target, --label, --no-cache and -f reach the build.
func TestBuildFlags(t *testing.T) {
	needRoot(t)
	e := engine{name: "embedded", env: []string{"BUILDKIT_HOST="}}
	root := t.TempDir()
	ctx := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "a.txt"), []byte("a\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "build.kubefile"), []byte(`FROM scratch AS one
ARG WHO=nobody
ENV WHO=${WHO}
LABEL stage=one
COPY a.txt /one/a.txt

FROM scratch AS two
COPY --from=one /one /two
LABEL stage=two
`), 0o644))
	file := filepath.Join(ctx, "build.kubefile")

	_, r := build(t, e, root, "-f", file, "-t", "flags:one", "--target", "one", "--build-arg", "WHO=alice", "--label", "extra=yes", ctx)
	ins := inspect(t, e, root, "flags:one")
	assert.Equal(t, "one", ins.Labels["stage"], r)
	assert.Equal(t, "yes", ins.Labels["extra"])
	assert.Contains(t, ins.Env, "WHO=alice")

	build(t, e, root, "-f", file, "-t", "flags:two", ctx)
	assert.Equal(t, "two", inspect(t, e, root, "flags:two").Labels["stage"])

	again, r := build(t, e, root, "-f", file, "-t", "flags:two", "--no-cache", ctx)
	assert.Positive(t, again.Steps, r)
	assert.Zero(t, again.Cached, r)
}

// TestBuildkitAddrFlag: --buildkit-addr selects the daemon and wins over $BUILDKIT_HOST;
// an unreachable daemon is named in the error.
func TestBuildkitAddrFlag(t *testing.T) {
	needRoot(t)
	addr := startBuildkitd(t)
	e := engine{name: "remote-flag", env: []string{"BUILDKIT_HOST=unix:///nonexistent/buildkitd.sock"}}
	root := t.TempDir()
	out, r := build(t, e, root, "--buildkit-addr", addr, "-t", "viaflag:v1", filepath.Join(examplesDir(t), "app"))
	assert.Positive(t, out.Steps, r)
	assert.Equal(t, "application", inspect(t, e, root, "viaflag:v1").Type)
	// The remote daemon keeps no state under --root.
	_, err := os.Stat(filepath.Join(root, "buildkit"))
	assert.True(t, os.IsNotExist(err), "no embedded engine state with a remote daemon")

	r = e.sealos(t, root, "build", "-t", "x:v1", filepath.Join(examplesDir(t), "app"))
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "connect to buildkitd at unix:///nonexistent/buildkitd.sock", r)
}
