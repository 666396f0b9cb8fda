package main

// End-to-end tests of run, apply, exec, scp, add, delete and reset with the real binary
// ($SEALOS_BIN, set by `make test`) against test nodes (testdata/nodes.sh, as root).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/apply/applytest"
	"github.com/cluster-image/sealos/apply/clusterfile"
	"github.com/cluster-image/sealos/store"

	"github.com/cluster-image/sealos/internal/testtool"
)

func TestRunEndToEnd(t *testing.T) {
	sealosBin(t)
	set := applytest.StartNodes(t, 3, 10)
	ctx := context.Background()
	root := t.TempDir()
	st, err := store.Open(root)
	require.NoError(t, err)
	img := applytest.Image(applytest.Config{Labels: applytest.Rootfs(), Env: []string{"who=image"}, Cmd: []string{"echo ran >> /var/lib/sealos/ran.log"}},
		applytest.Layer(map[string]string{"bin/tool": "tool", "etc/who.conf.tmpl": "who={{ .who }}\n"}))
	require.NoError(t, st.WriteImage(ctx, "test/rootfs:v1", img))
	m, n1, n2 := set.IPs[0], set.IPs[1], set.IPs[2]
	env := []string{"SEALOS_SSH_PASSWORD=" + set.Password}
	read := func(i int, p string) string {
		b, err := os.ReadFile(set.Path(i, p))
		if err != nil {
			return err.Error()
		}
		return string(b)
	}
	const rootfs = "/var/lib/sealos/data/default/rootfs"

	r := mustSealos(t, env, "", "--root", root, "run", "test/rootfs:v1", "--masters", m, "--nodes", n1, "-e", "who=cli")
	assert.Contains(t, r.stdout, "cluster default: ClusterSuccess")
	assert.Equal(t, "who=cli\n", read(0, rootfs+"/etc/who.conf"))
	assert.Equal(t, "ran\n", read(1, "/var/lib/sealos/ran.log"))
	assert.Contains(t, r.stderr, n1+": cmd 0.0 test/rootfs:v1")

	// Unchanged: nothing sent, nothing run; JSON state with the password redacted.
	r = mustSealos(t, env, "", "--root", root, "run", "test/rootfs:v1", "-e", "who=cli", "-o", "json")
	var state clusterfile.Cluster
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &state))
	assert.Equal(t, clusterfile.PhaseRunning, state.Status.Phase)
	assert.Equal(t, "<redacted>", state.Spec.SSH.Passwd)
	assert.NotContains(t, r.stdout+r.stderr, set.Password)
	assert.Equal(t, "ran\n", read(0, "/var/lib/sealos/ran.log"))
	fi, err := os.Stat(filepath.Join(root, "clusters", "default", "Clusterfile"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// exec and scp by role.
	r = mustSealos(t, nil, "", "--root", root, "exec", "--roles", "node", "cat", rootfs+"/bin/tool")
	assert.Equal(t, n1+": tool\n", r.stdout)
	src := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(src, []byte("copied"), 0o644))
	mustSealos(t, nil, "", "--root", root, "scp", src, "/var/lib/sealos/f", "--roles", "master")
	assert.Equal(t, "copied", read(0, "/var/lib/sealos/f"))
	r = sealos(t, nil, "", "--root", root, "exec", "exit 5")
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "status 5")

	// add, delete.
	mustSealos(t, nil, "", "--root", root, "add", "--nodes", n2, "-e", "who=cli")
	assert.Equal(t, "tool", read(2, rootfs+"/bin/tool"))
	assert.Equal(t, "ran\n", read(2, "/var/lib/sealos/ran.log"))
	assert.Equal(t, "ran\n", read(0, "/var/lib/sealos/ran.log"))
	mustSealos(t, nil, "", "--root", root, "delete", "--nodes", n1)
	assert.Contains(t, read(1, rootfs+"/bin/tool"), "no such file")
	r = sealos(t, nil, "", "--root", root, "delete", "--masters", m)
	require.Error(t, r.err, "the last master is not deleted")

	// reset.
	mustSealos(t, nil, "", "--root", root, "reset")
	assert.Contains(t, read(0, rootfs+"/bin/tool"), "no such file")
	_, err = os.Stat(filepath.Join(root, "clusters", "default"))
	assert.True(t, os.IsNotExist(err))

	// apply -f with a Clusterfile: key login, host env over -e.
	cf := fmt.Sprintf(`apiVersion: apps.sealos.io/v1beta1
kind: Cluster
metadata:
  name: cf
spec:
  hosts:
  - ips: [%s]
    roles: [master]
    env: [who=host]
  - ips: [%s]
    roles: [node]
  ssh:
    pk: %s
  image: [test/rootfs:v1]
  env: [who=spec]
`, m, n1, set.Key)
	file := filepath.Join(t.TempDir(), "Clusterfile")
	require.NoError(t, os.WriteFile(file, []byte(cf), 0o600))
	mustSealos(t, nil, "", "--root", root, "apply", "-f", file)
	assert.Equal(t, "who=host\n", read(0, "/var/lib/sealos/data/cf/rootfs/etc/who.conf"))
	assert.Equal(t, "who=spec\n", read(1, "/var/lib/sealos/data/cf/rootfs/etc/who.conf"))
	mustSealos(t, nil, "", "--root", root, "reset", "--cluster", "cf")

	// Errors say what to do.
	r = sealos(t, nil, "", "--root", root, "run", "test/rootfs:v1")
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "--masters")
	r = sealos(t, nil, "", "--root", root, "run", "test/missing:v1", "--masters", m, "--no-pull", "-i", set.Key)
	require.Error(t, r.err)
	assert.True(t, strings.Contains(r.stderr, "test/missing:v1"), r.stderr)
}

// TestExamplesOnNodes builds examples/rootfs and examples/app with sealos build and runs
// them on three nodes (one master, two nodes).
func TestExamplesOnNodes(t *testing.T) {
	sealosBin(t)
	if os.Geteuid() != 0 {
		testtool.Missing(t, "building the examples needs root (the embedded BuildKit)")
	}
	set := applytest.StartNodes(t, 3, 12)
	root := t.TempDir()
	examples, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	require.NoError(t, err)
	mustSealos(t, nil, "", "--root", root, "build", "-t", "example-rootfs:v1", filepath.Join(examples, "rootfs"))
	mustSealos(t, nil, "", "--root", root, "build", "-t", "example-app:v1", filepath.Join(examples, "app"))
	read := func(i int, p string) string {
		b, err := os.ReadFile(set.Path(i, p))
		if err != nil {
			return err.Error()
		}
		return string(b)
	}

	r := mustSealos(t, nil, "", "--root", root, "run", "example-rootfs:v1", "--masters", set.IPs[0], "--nodes", set.IPs[1]+","+set.IPs[2],
		"-i", set.Key, "-e", "registryPort=5099")
	for i, ip := range set.IPs {
		assert.Contains(t, read(i, "/var/lib/sealos/data/default/rootfs/etc/registry.yml"), "addr: :5099", "templates rendered on %s", ip)
		assert.Contains(t, read(i, "/var/lib/sealos/data/default/rootfs/etc/hosts.example"), "127.0.0.1 sealos.hub")
		assert.Contains(t, r.stderr, ip+": example-rootfs v0.1.0 installed", "init ran on %s", ip)
		assert.Contains(t, r.stderr, ip+": rootfs: /usr/local", "CMD ran on %s", ip)
	}

	// The application on the first master only; its CMD needs kubectl and helm, so it is
	// replaced by a command that shows the shipped tree.
	r = mustSealos(t, nil, "", "--root", root, "run", "example-app:v1", "--cmd", "ls manifests charts/hello; echo ns=$NAMESPACE")
	assert.Contains(t, r.stderr, set.IPs[0]+": namespace.yaml")
	assert.Contains(t, r.stderr, set.IPs[0]+": ns=hello")
	assert.NotContains(t, r.stderr, set.IPs[1]+": ns=")
	assert.Contains(t, r.stdout, "3 host(s) already up to date", "nothing new for the rootfs (-e registryPort was recorded)")

	mustSealos(t, nil, "", "--root", root, "reset")
	for i := range set.IPs {
		assert.Contains(t, read(i, "/var/lib/sealos/data/default/rootfs/etc/registry.yml"), "no such file")
	}
}

// TestRunPullsMissingImage runs an image that is only in a registry: run pulls it first.
func TestRunPullsMissingImage(t *testing.T) {
	bin := sealosBin(t)
	set := applytest.StartNodes(t, 1, 13)
	host := serveHub(t, bin)
	ref := host + "/test/rootfs:v1"
	img := applytest.Image(applytest.Config{Labels: applytest.Rootfs()}, applytest.Layer(map[string]string{"bin/pulled": "yes"}))
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	require.NoError(t, remote.Write(r, img))

	root := t.TempDir()
	res := mustSealos(t, []string{"DOCKER_CONFIG=" + t.TempDir()}, "", "--root", root, "run", ref, "--masters", set.IPs[0], "-i", set.Key)
	assert.Contains(t, res.stderr, "pulling "+ref)
	b, err := os.ReadFile(set.Path(0, "/var/lib/sealos/data/default/rootfs/bin/pulled"))
	require.NoError(t, err)
	assert.Equal(t, "yes", string(b))
}
