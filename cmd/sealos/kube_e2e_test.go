package main

// End-to-end tests of a real Kubernetes: the rootfs image `make kube-image` builds, run
// with the real binary on test hosts that each have their own network namespace,
// containerd and kubelet (testdata/nodes.sh with NODES_NETNS=1, as root). `make e2e-kube`
// runs them alone.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/apply/applytest"
	"github.com/cluster-image/sealos/store"
)

// kubeRoot is one store for every Kubernetes test of this run: the images are built once.
var kubeRoot struct {
	once           sync.Once
	dir, kube, app string
	err            error
}

// kubeImages builds (or finds cached) the Kubernetes rootfs image and the test's
// application image, and returns the store root and both names.
func kubeImages(t *testing.T) (root, kubeImage, appImage string) {
	t.Helper()
	bin := sealosBin(t)
	kubeRoot.once.Do(func() {
		var err error
		if kubeRoot.dir, err = os.MkdirTemp("/var/tmp", "sealos-kube-root-"); err != nil {
			kubeRoot.err = err
			return
		}
		script := func(name string) (string, error) {
			cmd := exec.Command(filepath.Join("..", "..", "hack", "kube", name), bin)
			cmd.Env = append(os.Environ(), "SEALOS_ROOT="+kubeRoot.dir)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				return "", fmt.Errorf("%s: %w\n%s", name, err, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			return lines[len(lines)-1], nil
		}
		if kubeRoot.kube, kubeRoot.err = script("image.sh"); kubeRoot.err != nil {
			return
		}
		kubeRoot.app, kubeRoot.err = script("app-image.sh")
	})
	require.NoError(t, kubeRoot.err)
	return kubeRoot.dir, kubeRoot.kube, kubeRoot.app
}

// kubectl runs kubectl as cluster admin inside host i.
func kubectl(set *applytest.Set, i int, args string) (string, error) {
	return set.Sh(i, "kubectl --kubeconfig /etc/kubernetes/admin.conf "+args)
}

// eventually retries fn every 2 s until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(2 * time.Second)
	}
}

// readyNodes counts the Ready nodes master i sees.
func readyNodes(set *applytest.Set, i int) (int, error) {
	out, err := kubectl(set, i, "get nodes -o json")
	if err != nil {
		return 0, err
	}
	var list struct {
		Items []struct {
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return 0, fmt.Errorf("%w: %s", err, out)
	}
	n := 0
	for _, it := range list.Items {
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				n++
			}
		}
	}
	return n, nil
}

func requireReady(t *testing.T, set *applytest.Set, want int) {
	t.Helper()
	n, err := readyNodes(set, 0)
	require.NoError(t, err)
	require.Equal(t, want, n, "Ready nodes")
	t.Logf("nodes Ready: %d", n)
}

// leftovers lists what of a cluster is still on host i after reset or delete.
func leftovers(t *testing.T, set *applytest.Set, i int) []string {
	t.Helper()
	checks := map[string]string{
		// The host's own processes are those of its cgroup subtree (its / in every hierarchy).
		"processes":  `for f in $(find /sys/fs/cgroup/pids -name cgroup.procs); do cat "$f"; done | while read -r p; do cat /proc/$p/comm 2>/dev/null; done | grep -vE '^(sshd|sh|bash|cat|find|grep)$' || true`,
		"mounts":     `grep -E ' /(var/lib/kubelet|run/containerd|var/lib/containerd)/' /proc/self/mountinfo || true`,
		"cni0":       `ip -o link show | grep -E 'cni0|veth' || true`,
		"routes":     `ip route show proto 233`,
		"iptables":   `(iptables-save 2>/dev/null; iptables-legacy-save 2>/dev/null) | grep -E '^:(KUBE|CNI)-' || true`,
		"files":      `ls -d /etc/kubernetes /var/lib/kubelet/* /var/lib/etcd/* /etc/cni/net.d/* /usr/local/bin/kube* /var/lib/sealos/data/* 2>/dev/null || true`,
		"/etc/hosts": `grep -E 'sealos' /etc/hosts || true`,
	}
	var out []string
	for what, cmd := range checks {
		got, err := set.Sh(i, cmd)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", what, err))
		} else if s := strings.TrimSpace(got); s != "" {
			out = append(out, fmt.Sprintf("%s: %s", what, s))
		}
	}
	return out
}

func TestKubernetesEndToEnd(t *testing.T) {
	root, kubeImage, appImage := kubeImages(t)
	set := applytest.StartHosts(t, 3, 41)
	a, b, c := set.IPs[0], set.IPs[1], set.IPs[2]
	cl := "e2e"
	base := []string{"--root", root, "--cluster", cl}
	args := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	t.Cleanup(func() { sealos(t, nil, "", "--root", root, "reset", "--cluster", cl, "--force") })

	// 1+1 with the application.
	start := time.Now()
	r := mustSealos(t, nil, "", args("run", kubeImage, appImage, "--masters", a, "--nodes", b, "-i", set.Key)...)
	t.Logf("1+1 up with the app in %s", time.Since(start).Round(time.Second))
	assert.Contains(t, r.stderr, "nodes Ready: 2 of 2")
	requireReady(t, set, 2)

	// The app's pods run on the worker, from the image in the app's registry/.
	var pods struct {
		Items []struct {
			Spec   struct{ NodeName string }
			Status struct{ Phase, PodIP string }
		}
	}
	eventually(t, 3*time.Minute, "2 webapp pods Running", func() error {
		out, err := kubectl(set, 0, "get pods -l app=webapp -o json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &pods); err != nil {
			return err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == "Running" {
				running++
			}
		}
		if running != 2 {
			return fmt.Errorf("%d of %d Running", running, len(pods.Items))
		}
		return nil
	})
	t.Logf("app pods Running: %d", len(pods.Items))
	worker, err := set.Sh(1, "hostname")
	require.NoError(t, err)
	for _, p := range pods.Items {
		assert.Equal(t, strings.TrimSpace(worker), p.Spec.NodeName, "the master is tainted: pods run on the worker")
	}
	inspect := mustSealos(t, nil, "", "--root", root, "inspect", "sealos-e2e/webapp:v1")
	digest := regexpFind(t, `sha256:[0-9a-f]{64}`, inspect.stdout)
	out, err := set.Sh(1, "crictl inspecti -o json docker.io/sealos-e2e/webapp:v1")
	require.NoError(t, err)
	assert.Contains(t, out, "docker.io/sealos-e2e/webapp@"+digest, "the worker runs the image that was built")
	log, err := os.ReadFile(set.Path(0, "/var/lib/sealos/data/"+cl+"/registry.log"))
	require.NoError(t, err)
	assert.Contains(t, string(log), "/v2/sealos-e2e/webapp/manifests/v1", "the worker pulled from the cluster's registry")

	// The Service answers on master 0 (kube-proxy, then the route to the worker's pods).
	ip, err := kubectl(set, 0, "get svc webapp -o jsonpath={.spec.clusterIP}")
	require.NoError(t, err)
	eventually(t, time.Minute, "the Service answers on master 0", func() error {
		out, err := set.Sh(0, "curl -sS -m 5 http://"+strings.TrimSpace(ip)+"/")
		if err == nil && !strings.Contains(out, "webapp webapp-") {
			err = fmt.Errorf("answer %q", out)
		}
		return err
	})

	// Unchanged: nothing shipped, nothing run again.
	start = time.Now()
	r = mustSealos(t, nil, "", args("run", kubeImage, appImage)...)
	t.Logf("unchanged re-run: %s", time.Since(start).Round(100*time.Millisecond))
	assert.Contains(t, r.stdout, "(0 files")
	assert.NotContains(t, r.stderr, ": kubeadm")
	assert.NotContains(t, r.stderr, ": script init")

	// add: the new host's kubelet port is taken, so the add stops there naming it; once it
	// is free, the same add finishes.
	free := squat(t, set, 2, 10250)
	r = sealos(t, nil, "", args("add", "--nodes", c)...)
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, c)
	assert.Contains(t, r.stderr, "port 10250 is taken")
	free()

	// A join killed half way (the kubelet's bootstrap file written): the add fails naming
	// the host, and the same add finishes the job. ([k] keeps pkill off this shell, whose
	// command line names the pattern too.)
	killed := make(chan string, 1)
	go func() {
		out, _ := set.Sh(2, `for i in $(seq 1 3000); do if [ -e /etc/kubernetes/bootstrap-kubelet.conf ]; then pkill -9 -f '[k]ubeadm join --config' && echo killed; exit 0; fi; sleep 0.1; done`)
		killed <- out
	}()
	r = sealos(t, nil, "", args("add", "--nodes", c)...)
	require.Contains(t, <-killed, "killed")
	require.Error(t, r.err, "the join was killed")
	assert.Contains(t, r.stderr, c)
	r = mustSealos(t, nil, "", args("add", "--nodes", c)...)
	assert.Contains(t, r.stderr, "a failed kubeadm join left files")
	requireReady(t, set, 3)

	// delete: the node is drained and gone, its host clean.
	mustSealos(t, nil, "", args("delete", "--nodes", c)...)
	requireReady(t, set, 2)
	assert.Empty(t, leftovers(t, set, 2))

	// reset: every host clean.
	resetClean(t, set, root, cl, 2)
}

// squat makes a program listen on port of host i (a TCP listener of ours) until the
// returned func is called.
func squat(t *testing.T, set *applytest.Set, i, port int) (free func()) {
	t.Helper()
	_, err := set.Sh(i, fmt.Sprintf("setsid %s kube-balancer --listen 0.0.0.0:%d --backend 127.0.0.1:1 >/dev/null 2>&1 & echo $! >/tmp/squatter.pid", sealosBin(t), port))
	require.NoError(t, err)
	// It runs in the background: the port is taken only once it listens.
	_, err = set.Sh(i, fmt.Sprintf("for i in $(seq 1 100); do ss -Hltn 'sport = :%d' | grep -q . && exit 0; sleep 0.1; done; echo 'port %d never taken' >&2; exit 1", port, port))
	require.NoError(t, err)
	return func() {
		_, err := set.Sh(i, "kill $(cat /tmp/squatter.pid)")
		require.NoError(t, err)
	}
}

// resetClean resets cluster cl and checks that its first hosts are left clean.
func resetClean(t *testing.T, set *applytest.Set, root, cl string, hosts int) {
	t.Helper()
	mustSealos(t, nil, "", "--root", root, "reset", "--cluster", cl)
	for i := range hosts {
		assert.Empty(t, leftovers(t, set, i), "host %d", i)
	}
}

func TestKubernetesHA(t *testing.T) {
	root, kubeImage, _ := kubeImages(t)
	set := applytest.StartHosts(t, 4, 42)
	cl := "ha"
	t.Cleanup(func() { sealos(t, nil, "", "--root", root, "reset", "--cluster", cl, "--force") })
	start := time.Now()
	r := mustSealos(t, nil, "", "--root", root, "--cluster", cl, "run", kubeImage,
		"--masters", strings.Join(set.IPs[:3], ","), "--nodes", set.IPs[3], "-i", set.Key)
	t.Logf("3+1 Ready in %s", time.Since(start).Round(time.Second))
	assert.Contains(t, r.stderr, "nodes Ready: 4 of 4")

	// Master 0's apiserver stops.
	_, err := set.Sh(0, "mv /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/kube-apiserver.yaml.stopped")
	require.NoError(t, err)
	eventually(t, 2*time.Minute, "master 0's apiserver stops", func() error {
		if _, err := set.Sh(0, "curl -sk -m 2 https://"+set.IPs[0]+":6443/livez"); err == nil {
			return fmt.Errorf("still answers")
		}
		return nil
	})
	// The node reaches the API through its balancer, with its own credentials; master 1
	// through its own apiserver.
	eventually(t, time.Minute, "kubectl on the node", func() error {
		// A kubelet's credentials read its own Node object only.
		_, err := set.Sh(3, "kubectl --kubeconfig /etc/kubernetes/kubelet.conf get node $(hostname)")
		return err
	})
	eventually(t, time.Minute, "kubectl on master 1", func() error {
		_, err := kubectl(set, 1, "get nodes")
		return err
	})
	resetClean(t, set, root, cl, 4)
}

func TestKubernetesRefusesBadHosts(t *testing.T) {
	root, kubeImage, _ := kubeImages(t)
	set := applytest.StartHosts(t, 1, 43)
	h := set.IPs[0]

	// Port 6443 is taken on the master.
	free := squat(t, set, 0, 6443)
	r := sealos(t, nil, "", "--root", root, "--cluster", "bad", "run", kubeImage, "--masters", h, "-i", set.Key)
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, h)
	assert.Contains(t, r.stderr, "port 6443 is taken")
	free()
	sealos(t, nil, "", "--root", root, "reset", "--cluster", "bad", "--force")

	// A Kubernetes image for arm64 is refused before anything is shipped.
	arm := make([]byte, 64)
	copy(arm, "\x7fELF\x02\x01\x01")
	arm[18] = 183 // EM_AARCH64
	img := applytest.Image(applytest.Config{Labels: applytest.Rootfs()}, applytest.Layer(map[string]string{"bin/kubeadm": string(arm)}))
	st := openStore(t, root)
	require.NoError(t, st.WriteImage(t.Context(), "test/kubernetes-arm64:v1", img))
	r = sealos(t, nil, "", "--root", root, "--cluster", "arm", "run", "test/kubernetes-arm64:v1", "--masters", h, "-i", set.Key)
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "built for arm64")
	assert.Contains(t, r.stderr, h)
	_, err := os.Stat(set.Path(0, "/var/lib/sealos/data/arm/rootfs"))
	assert.True(t, os.IsNotExist(err), "nothing shipped: %v", err)
	sealos(t, nil, "", "--root", root, "reset", "--cluster", "arm", "--force")
}

func regexpFind(t *testing.T, expr, s string) string {
	t.Helper()
	m := regexp.MustCompile(expr).FindString(s)
	require.NotEmpty(t, m, "no %s in %q", expr, s)
	return m
}

func openStore(t *testing.T, root string) *store.Store {
	t.Helper()
	st, err := store.Open(root)
	require.NoError(t, err)
	return st
}
