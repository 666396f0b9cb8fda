// Package applytest helps test the apply engine: it starts and stops target nodes
// (testdata/nodes.sh: real sshd instances on loopback addresses, each in its own mount
// namespace, or "hosts" that have their own network, UTS and cgroup namespaces too) and
// builds small cluster images with go-containerregistry.
package applytest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cluster-image/sealos/internal/testtool"
)

// Set is a running set of nodes.
type Set struct {
	Dir        string
	IPs        []string
	Port       int
	Key        string // private key without passphrase
	KeyPass    string // private key encrypted with Passphrase
	Passphrase string
	Password   string // root's password on every node

	netns  bool // hosts (StartHosts)
	script string
	env    []string
}

// Start starts count nodes on 127.0.<net>.11 and up and stops them when the test ends.
// It skips the test when not root or when sshd is missing, saying so.
func StartNodes(t testing.TB, count, net int) *Set {
	t.Helper()
	return start(t, count, net, false)
}

// StartHosts starts count hosts (nodes.sh with NODES_NETNS=1) and stops them when the test
// ends: each is enough of a machine for containerd, kubelet and pods, with its own network
// namespace (sshd on 10.250.<net>.11 and up, reached over the bridge sealos-br<net>),
// hostname node<i>-<net>, cgroup subtree seen as /, sysfs, /run and per-host directories
// under /var/lib (see Path). net is 0 to 255. It skips the test when not root or when a
// tool is missing, saying so.
func StartHosts(t testing.TB, count, net int) *Set {
	t.Helper()
	for _, tool := range []string{"ip", "iptables", "nsenter", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			testtool.Missing(t, "test hosts need %s: apt-get install -y iproute2 iptables util-linux", tool)
		}
	}
	return start(t, count, net, true)
}

func start(t testing.TB, count, net int, netns bool) *Set {
	t.Helper()
	if os.Geteuid() != 0 {
		testtool.Missing(t, "test nodes need root (mount namespaces and sshd); run the tests as root")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		testtool.Missing(t, "test nodes need openssh-server (/usr/sbin/sshd): apt-get install -y openssh-server")
	}
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/var/tmp", "sealos-nodes-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Set{Dir: dir, netns: netns, script: script, env: append(os.Environ(),
		"NODES_DIR="+dir, fmt.Sprintf("NODES_PREFIX=127.0.%d.", net))}
	if netns {
		s.env = append(s.env, "NODES_NETNS=1")
	}
	t.Cleanup(func() {
		_ = s.run("stop")
		os.RemoveAll(dir)
	})
	out, err := s.output("start", strconv.Itoa(count))
	if err != nil {
		t.Fatalf("start %d nodes: %v", count, err)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"`)
		switch k {
		case "NODES_IPS":
			s.IPs = strings.Fields(v)
		case "NODES_PORT":
			s.Port, _ = strconv.Atoi(v)
		case "NODES_KEY":
			s.Key = v
		case "NODES_KEY_PASS":
			s.KeyPass = v
		case "NODES_PASSPHRASE":
			s.Passphrase = v
		case "NODES_PASSWORD":
			s.Password = v
		}
	}
	if len(s.IPs) != count {
		t.Fatalf("nodes.sh started %d nodes, want %d:\n%s", len(s.IPs), count, out)
	}
	return s
}

// Kill kills node i (0-based): its sshd and every session in it.
func (s *Set) Kill(i int) error { return s.run("kill", strconv.Itoa(i+1)) }

// Restart starts node i (0-based) again with the state it had. A host (StartHosts) boots
// again: same disks and network namespace, a fresh /run, nothing running but its sshd.
func (s *Set) Restart(i int) error { return s.run("restart", strconv.Itoa(i+1)) }

// Sh runs cmd with sh -c inside node i (0-based): in its namespaces and, for a host, its
// cgroups. It returns stdout and stderr together. What cmd leaves running in the background
// must not keep the output open (redirect it), or Sh waits for it.
func (s *Set) Sh(i int, cmd string) (string, error) {
	c := exec.Command("bash", s.script, "sh", strconv.Itoa(i+1), "sh", "-c", cmd)
	c.Env = s.env
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("node %d: %s: %w: %s", i+1, cmd, err, out)
	}
	return string(out), nil
}

// perNode are the directories each node has its own copy of: path inside -> name under
// Dir/node<i>; hostDirs are those hosts have too.
var (
	perNode  = map[string]string{"/var/lib/sealos": "sealos", "/tmp": "tmp"}
	hostDirs = map[string]string{
		"/var/lib/containerd": "containerd", "/var/lib/kubelet": "kubelet", "/var/lib/etcd": "etcd",
		"/var/lib/cni": "cni", "/var/lib/registry": "registry", "/var/log": "log", "/root/.kube": "kube",
	}
)

// Path is where a path inside node i's /var/lib/sealos or /tmp (and for hosts, also
// /var/lib/containerd, kubelet, etcd, cni, registry, /var/log, /root/.kube) lives on this
// machine.
func (s *Set) Path(i int, p string) string {
	node := filepath.Join(s.Dir, fmt.Sprintf("node%d", i+1))
	if p == "/etc/hosts" {
		return filepath.Join(node, "hosts")
	}
	for _, dirs := range []map[string]string{perNode, hostDirs} {
		for in, name := range dirs {
			rel, err := filepath.Rel(in, p)
			if err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
				return filepath.Join(node, name, rel)
			}
		}
		if !s.netns {
			break
		}
	}
	panic("nodes: no per-node path for " + p)
}

func (s *Set) run(args ...string) error {
	_, err := s.output(args...)
	return err
}

func (s *Set) output(args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{s.script}, args...)...)
	cmd.Env = s.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("nodes.sh %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "testdata", "nodes.sh")
		if _, err := os.Stat(p); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return p, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("testdata/nodes.sh not found above the test's directory")
		}
		dir = parent
	}
}
