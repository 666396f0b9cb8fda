package apply_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/apply"
	"github.com/cluster-image/sealos/apply/applytest"
	"github.com/cluster-image/sealos/apply/clusterfile"
	"github.com/cluster-image/sealos/apply/plan"
	"github.com/cluster-image/sealos/apply/ship"
	"github.com/cluster-image/sealos/store"
)

type env struct {
	t     *testing.T
	set   *applytest.Set
	root  string
	st    *store.Store
	out   *safeBuffer
	ips   []string
	extra []string
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T, count, net int) *env {
	set := applytest.StartNodes(t, count, net)
	root := t.TempDir()
	st, err := store.Open(root)
	require.NoError(t, err)
	return &env{t: t, set: set, root: root, st: st, out: &safeBuffer{}, ips: set.IPs}
}

func (e *env) cluster(masters, workers []string, images ...string) *clusterfile.Cluster {
	c := clusterfile.New("default")
	c.AddHosts([]string{clusterfile.RoleMaster}, masters...)
	if len(workers) > 0 {
		c.AddHosts([]string{clusterfile.RoleNode}, workers...)
	}
	c.Spec.SSH = clusterfile.SSH{User: "root", Passwd: e.set.Password}
	c.Spec.Image = images
	return c
}

func (e *env) apply(c *clusterfile.Cluster, mod func(o *apply.Options)) (*clusterfile.Cluster, *ship.Progress, error) {
	p := &ship.Progress{}
	o := apply.Options{Root: e.root, Cluster: c, Source: plan.StoreSource(e.st, nil), Out: e.out, Progress: p, Env: e.extra}
	if mod != nil {
		mod(&o)
	}
	got, err := apply.Apply(context.Background(), o)
	return got, p, err
}

func (e *env) read(i int, p string) string {
	b, err := os.ReadFile(e.set.Path(i, p))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

const data = "/var/lib/sealos/data/default"

func rootfsImage(version string, extra map[string]string) *applytest.Config {
	return &applytest.Config{Labels: applytest.Rootfs(), Env: []string{"version=" + version, "who=image"},
		Cmd: []string{"echo cmd-" + version + " >> /var/lib/sealos/cmd.log", "echo on $(hostname -i 2>/dev/null || true) $who"}}
}

func TestApplyEndToEnd(t *testing.T) {
	e := newEnv(t, 3, 6)
	ctx := context.Background()
	master, n1, n2 := e.ips[0], e.ips[1], e.ips[2]

	files := map[string]string{
		"bin/tool":              "tool v1",
		"etc/kubelet.conf.tmpl": "version={{ .version }} who={{ .who }} domain={{ .registryDomain }}\n",
		"scripts/init.sh":       "echo init >> /var/lib/sealos/init.log\n",
		"scripts/check.sh":      "test -d /var/lib/sealos\n",
	}
	for i := 0; i < 20; i++ {
		files[fmt.Sprintf("opt/data/f%02d", i)] = strings.Repeat("x", i*100)
	}
	cfg := rootfsImage("v1", nil)
	require.NoError(t, e.st.WriteImage(ctx, "test/rootfs:v1", applytest.Image(*cfg, applytest.Layer(files))))
	app := applytest.Image(applytest.Config{Env: []string{"replicas=3"}, Cmd: []string{"echo app $(replicas) >> /var/lib/sealos/app.log", "cat manifests/app.yaml >> /var/lib/sealos/app.log"}},
		applytest.Layer(map[string]string{"manifests/app.yaml.tmpl": "replicas: {{ .replicas }} version: {{ .version }}\n"}))
	require.NoError(t, e.st.WriteImage(ctx, "test/app:v1", app))

	c := e.cluster([]string{master}, []string{n1}, "test/rootfs:v1", "test/app:v1")
	c.Spec.Hosts[1].Env = []string{"who=node"}

	t.Run("first run", func(t *testing.T) {
		got, p, err := e.apply(c, nil)
		require.NoError(t, err, e.out.String())
		assert.Equal(t, clusterfile.PhaseRunning, got.Status.Phase)
		assert.Equal(t, int64(2*25+2), p.Files.Load(), "the rootfs (24 files, 1 rendered) to each host (rendered templates differ), the app (1+1) to the master")
		for i, who := range []string{"image", "node"} {
			assert.Equal(t, "tool v1", e.read(i, data+"/rootfs/bin/tool"))
			assert.Equal(t, "version=v1 who="+who+" domain=sealos.hub\n", e.read(i, data+"/rootfs/etc/kubelet.conf"))
			assert.Equal(t, "init\n", e.read(i, "/var/lib/sealos/init.log"))
			assert.Equal(t, "cmd-v1\n", e.read(i, "/var/lib/sealos/cmd.log"))
		}
		assert.Equal(t, "app 3\nreplicas: 3 version: v1\n", e.read(0, "/var/lib/sealos/app.log"), "the application runs on the first master only")
		assert.Contains(t, e.read(1, "/var/lib/sealos/app.log"), "no such file")
		assert.Contains(t, e.out.String(), n1+": on ", "output is prefixed with the host")

		st, err := os.Stat(apply.StatePath(e.root, "default"))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
		assert.NotContains(t, e.out.String(), e.set.Password, "the password is never printed")
	})

	t.Run("unchanged re-run sends nothing, runs nothing", func(t *testing.T) {
		e.out = &safeBuffer{}
		_, p, err := e.apply(c, nil)
		require.NoError(t, err, e.out.String())
		assert.Zero(t, p.Files.Load())
		assert.Zero(t, p.Wire.Load())
		assert.Equal(t, int64(3), p.Skipped.Load())
		assert.Equal(t, "init\n", e.read(0, "/var/lib/sealos/init.log"))
		assert.Equal(t, "cmd-v1\n", e.read(1, "/var/lib/sealos/cmd.log"))
		assert.Equal(t, "app 3\nreplicas: 3 version: v1\n", e.read(0, "/var/lib/sealos/app.log"))
	})

	t.Run("add a node", func(t *testing.T) {
		c.AddHosts([]string{clusterfile.RoleNode}, n2)
		_, p, err := e.apply(c, nil)
		require.NoError(t, err, e.out.String())
		assert.Equal(t, int64(25), p.Files.Load(), "only the new node gets files")
		assert.Equal(t, "tool v1", e.read(2, data+"/rootfs/bin/tool"))
		assert.Equal(t, "cmd-v1\n", e.read(2, "/var/lib/sealos/cmd.log"))
		assert.Equal(t, "cmd-v1\n", e.read(0, "/var/lib/sealos/cmd.log"), "the others do not run again")
	})

	t.Run("exec and scp", func(t *testing.T) {
		var out safeBuffer
		o := apply.HostsOptions{Root: e.root, Name: "default", Roles: []string{"master"}, Out: &out}
		require.NoError(t, apply.Exec(ctx, o, "echo hello from $(cat /etc/hostname 2>/dev/null || echo x) >/dev/null; echo hi"))
		assert.Equal(t, master+": hi\n", out.String())
		o = apply.HostsOptions{Root: e.root, Name: "default", Out: &out}
		err := apply.Exec(ctx, o, "exit 4")
		require.Error(t, err)
		for _, ip := range []string{master, n1, n2} {
			assert.Contains(t, err.Error(), ip)
		}
		src := filepath.Join(t.TempDir(), "dir")
		require.NoError(t, os.MkdirAll(filepath.Join(src, "sub"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(src, "sub", "f"), []byte("dir file"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(src, "..", "single"), []byte("single"), 0o600))
		o.IPs = []string{n2}
		require.NoError(t, apply.Scp(ctx, o, src, "/var/lib/sealos/scp"))
		require.NoError(t, apply.Scp(ctx, o, filepath.Join(src, "..", "single"), "/var/lib/sealos/single"))
		assert.Equal(t, "dir file", e.read(2, "/var/lib/sealos/scp/sub/f"))
		assert.Equal(t, "single", e.read(2, "/var/lib/sealos/single"))
		assert.Contains(t, e.read(1, "/var/lib/sealos/single"), "no such file")
	})

	t.Run("delete a node", func(t *testing.T) {
		require.NoError(t, apply.Delete(ctx, apply.ResetOptions{Root: e.root, Name: "default", Out: e.out}, []string{n1}))
		assert.Contains(t, e.read(1, data+"/rootfs/bin/tool"), "no such file")
		got, err := apply.LoadState(e.root, "default")
		require.NoError(t, err)
		assert.Equal(t, []string{master, n2}, got.IPs())
		for _, s := range got.Status.Steps {
			assert.NotEqual(t, n1, s.Host)
		}
		c.RemoveHosts(n1)
	})

	t.Run("cut connection mid-shipping, then finish", func(t *testing.T) {
		files2 := map[string]string{}
		for k, v := range files {
			files2[k] = v
		}
		files2["bin/tool"] = "tool v2"
		big := make([]byte, 1<<20)
		for i := 0; i < 6; i++ {
			_, _ = rand.Read(big)
			files2[fmt.Sprintf("opt/big/%d", i)] = string(big)
		}
		cfg := rootfsImage("v2", nil)
		require.NoError(t, e.st.WriteImage(ctx, "test/rootfs:v2", applytest.Image(*cfg, applytest.Layer(files2))))
		c.Spec.Image = []string{"test/rootfs:v2", "test/app:v1"}
		var once sync.Once
		_, _, err := e.apply(c, func(o *apply.Options) {
			o.OnFile = func(string, int64) { once.Do(func() { require.NoError(t, e.set.Kill(2)) }) }
		})
		require.Error(t, err)
		assert.Contains(t, err.Error(), n2)
		got, lerr := apply.LoadState(e.root, "default")
		require.NoError(t, lerr)
		assert.Equal(t, clusterfile.PhaseFailed, got.Status.Phase)
		results := map[string]string{}
		for _, s := range got.Status.Steps {
			if s.Name == "ship rootfs" {
				results[s.Host] = s.Result
			}
		}
		assert.Equal(t, map[string]string{master: "ok", n2: "failed"}, results, "the state says what is done")
		assert.Equal(t, "tool v1", e.read(2, data+"/rootfs/bin/tool"), "the cut host keeps its old tree")
		assert.Equal(t, "cmd-v1\n", e.read(0, "/var/lib/sealos/cmd.log"), "no command ran")

		require.NoError(t, e.set.Restart(2))
		_, p, err := e.apply(c, nil)
		require.NoError(t, err, e.out.String())
		assert.Equal(t, int64(9), p.Files.Load(), "only the cut host gets the changed files (tool, 6 big, the rendered conf), the master the re-rendered app manifest")
		for _, i := range []int{0, 2} {
			assert.Equal(t, "tool v2", e.read(i, data+"/rootfs/bin/tool"))
			assert.Equal(t, "cmd-v1\ncmd-v2\n", e.read(i, "/var/lib/sealos/cmd.log"))
		}
		assert.Equal(t, "app 3\nreplicas: 3 version: v1\napp 3\nreplicas: 3 version: v2\n", e.read(0, "/var/lib/sealos/app.log"),
			"the app's rendered tree changed with the rootfs env, so its commands ran again")
	})

	t.Run("reset", func(t *testing.T) {
		require.NoError(t, apply.Reset(ctx, apply.ResetOptions{Root: e.root, Name: "default", Out: e.out}))
		for _, i := range []int{0, 2} {
			_, err := os.Stat(e.set.Path(i, data))
			assert.True(t, os.IsNotExist(err))
		}
		_, err := os.Stat(apply.ClusterDir(e.root, "default"))
		assert.True(t, os.IsNotExist(err))
	})
}

func TestApplyCommandFailure(t *testing.T) {
	e := newEnv(t, 2, 8)
	ctx := context.Background()
	img := applytest.Image(applytest.Config{Labels: applytest.Rootfs(), Env: []string{"registryPassword=topsecret"}, Cmd: []string{"echo one", "echo about to fail; echo details >&2; exit 3", "echo never"}},
		applytest.Layer(map[string]string{"bin/x": "x"}))
	require.NoError(t, e.st.WriteImage(ctx, "test/fail:v1", img))
	c := e.cluster(e.ips[:1], e.ips[1:], "test/fail:v1")
	got, _, err := e.apply(c, nil)
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, e.ips[0])
	assert.Contains(t, msg, e.ips[1])
	assert.Contains(t, msg, "status 3")
	assert.Contains(t, msg, "exit 3")
	assert.Contains(t, msg, "details")
	assert.Equal(t, clusterfile.PhaseFailed, got.Status.Phase)
	assert.NotContains(t, e.out.String(), "never")
	assert.NotContains(t, msg, "topsecret", "env values are not part of error messages")
	state, rerr := os.ReadFile(apply.StatePath(e.root, "default"))
	require.NoError(t, rerr)
	assert.NotContains(t, string(state), "topsecret")
}
