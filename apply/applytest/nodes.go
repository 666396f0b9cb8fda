// Package applytest helps test the apply engine: it starts and stops target nodes
// (testdata/nodes.sh: real sshd instances on loopback addresses, each in its own mount
// namespace) and builds small cluster images with go-containerregistry.
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

	script string
	env    []string
}

// Start starts count nodes on 127.0.<net>.11 and up and stops them when the test ends.
// It skips the test when not root or when sshd is missing, saying so.
func StartNodes(t testing.TB, count, net int) *Set {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("test nodes need root (mount namespaces and sshd); run the tests as root")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("test nodes need openssh-server (/usr/sbin/sshd): apt-get install -y openssh-server")
	}
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/var/tmp", "sealos-nodes-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Set{Dir: dir, script: script, env: append(os.Environ(),
		"NODES_DIR="+dir, fmt.Sprintf("NODES_PREFIX=127.0.%d.", net))}
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

// Restart starts node i (0-based) again with the state it had.
func (s *Set) Restart(i int) error { return s.run("restart", strconv.Itoa(i+1)) }

// Path is where a path inside node i's /var/lib/sealos lives on this machine.
func (s *Set) Path(i int, p string) string {
	rel, err := filepath.Rel("/var/lib/sealos", p)
	if err == nil && !strings.HasPrefix(rel, "..") {
		return filepath.Join(s.Dir, fmt.Sprintf("node%d", i+1), "sealos", rel)
	}
	switch p {
	case "/etc/hosts":
		return filepath.Join(s.Dir, fmt.Sprintf("node%d", i+1), "hosts")
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
