package applytest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/crypto/ssh"
)

// TestHosts starts two hosts (NODES_NETNS=1) and looks at them from inside and outside: own
// hostname and address, a network between them, sshd, a cgroup subtree seen as /, a
// containerd that runs containers, and nothing left after stop.
func TestHosts(t *testing.T) {
	const set = 240
	s := StartHosts(t, 2, set)
	sh := func(i int, cmd string) string {
		t.Helper()
		out, err := s.Sh(i, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	for i, ip := range s.IPs {
		want := fmt.Sprintf("node%d-%d", i+1, set)
		if got := sh(i, "hostname"); got != want {
			t.Errorf("host %d: hostname %q, want %q", i, got, want)
		}
		if got := sh(i, "ip -4 -o addr show dev eth0 | awk '{ print $4 }'"); got != ip+"/24" {
			t.Errorf("host %d: eth0 has %q, want %s/24", i, got, ip)
		}
		// Its own sysfs: the host's interfaces, not this machine's.
		if got := sh(i, "ls /sys/class/net | tr '\\n' ' '"); got != "eth0 lo" {
			t.Errorf("host %d: /sys/class/net has %q, want eth0 lo", i, got)
		}
		if got := sh(i, "ip route show default"); !strings.HasPrefix(got, fmt.Sprintf("default via 10.250.%d.1 dev eth0", set)) {
			t.Errorf("host %d: default route %q", i, got)
		}
		if got := sshRun(t, s, ip, "hostname"); got != want {
			t.Errorf("ssh %s hostname: %q, want %q", ip, got, want)
		}
	}
	// The hosts reach each other over the bridge: ping, and TCP to the other's sshd.
	t.Log(sh(0, "busybox ping -c 1 -W 2 "+s.IPs[1]))
	if got := sh(1, fmt.Sprintf("bash -c 'exec 3<>/dev/tcp/%s/%d && head -c 7 <&3'", s.IPs[0], s.Port)); got != "SSH-2.0" {
		t.Errorf("host 2 -> %s:%d: %q, want an ssh banner", s.IPs[0], s.Port, got)
	}

	// Inside host 1, cgroup / is its subtree of this machine's hierarchies.
	cg := func(ctrl string) string { return fmt.Sprintf("/sys/fs/cgroup/%s/sealos-nodes/%d-1", ctrl, set) }
	t.Log(sh(0, "cat /proc/self/cgroup"))
	sh(0, "mkdir /sys/fs/cgroup/memory/probe /sys/fs/cgroup/cpu/probe")
	for _, ctrl := range []string{"memory", "cpu"} {
		if _, err := os.Stat(filepath.Join(cg(ctrl), "probe")); err != nil {
			t.Errorf("a cgroup made inside host 1: %v", err)
		}
	}
	if got := sh(0, "grep -c :/$ /proc/self/cgroup"); got != strconv.Itoa(cgroupLines(t)) {
		t.Errorf("inside host 1, %s of its cgroups are /, want all", got)
	}

	// Machine-wide sysctls kubelet and kube-proxy set: a host has its own copies.
	before, _ := os.ReadFile("/proc/sys/kernel/panic")
	sh(0, "echo 10 >/proc/sys/kernel/panic; echo 131072 >/proc/sys/net/netfilter/nf_conntrack_max")
	if got := sh(0, "cat /proc/sys/kernel/panic"); got != "10" {
		t.Errorf("kernel.panic in host 1 is %q after writing 10", got)
	}
	if after, _ := os.ReadFile("/proc/sys/kernel/panic"); string(after) != string(before) {
		t.Errorf("kernel.panic of this machine changed from %q to %q", before, after)
	}

	containerdPids := runContainers(t, s, cg)

	// kill cuts host 2's power; restart boots it again: same disks, a fresh /run.
	sh(1, "touch /run/gone /var/lib/kubelet/kept")
	if err := s.Kill(1); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(s.IPs[1], strconv.Itoa(s.Port)), time.Second); err == nil {
		c.Close()
		t.Error("host 2's sshd answers after kill")
	}
	if err := s.Restart(1); err != nil {
		t.Fatal(err)
	}
	if got := sshRun(t, s, s.IPs[1], "hostname; ls /run/gone /var/lib/kubelet/kept 2>&1; true"); !strings.Contains(got, "node2-240\n") ||
		!strings.Contains(got, "No such file") || !strings.Contains(got, "\n/var/lib/kubelet/kept") {
		t.Errorf("host 2 after restart: %q", got)
	}

	if err := s.run("stop"); err != nil {
		t.Fatal(err)
	}
	assertStopped(t, set, containerdPids)
}

// runContainers starts containerd in host 1, runs a busybox container in it and leaves one
// running (paused); it returns the pids of host 1's processes (stop must kill them).
func runContainers(t *testing.T, s *Set, cg func(string) string) []int {
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Log("no containerd (apt-get install -y containerd): not running containers")
		return nil
	}
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Log("no busybox (apt-get install -y busybox-static): not running containers")
		return nil
	}
	img := Image(Config{Cmd: []string{"/bin/sh"}}, Layer(map[string]string{"bin/busybox": string(bb), "bin/sh": "->busybox"}))
	if err := tarball.WriteToFile(s.Path(0, "/tmp/busybox.tar"), name.MustParseReference("sealos.test/busybox:1"), img); err != nil {
		t.Fatal(err)
	}
	sh := func(cmd string) string {
		t.Helper()
		out, err := s.Sh(0, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	// Debian's containerd, with its defaults: /run/containerd and /var/lib/containerd are
	// the host's.
	sh("containerd >/var/log/containerd.log 2>&1 &")
	for try := 0; ; try++ {
		if _, err := s.Sh(0, "ctr version"); err == nil {
			break
		}
		if try == 100 {
			log, _ := os.ReadFile(s.Path(0, "/var/log/containerd.log"))
			t.Fatalf("containerd in host 1 did not start:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Log(sh("ctr image import /tmp/busybox.tar"))
	out := sh("ctr run --rm sealos.test/busybox:1 once /bin/busybox sh -c 'echo hello from a container; cat /proc/self/cgroup'")
	t.Log(out)
	if !strings.Contains(out, "hello from a container") || !strings.Contains(out, ":memory:/default/once") {
		t.Errorf("ctr run: %q", out)
	}
	// A paused (frozen) container too: stop must thaw it to kill it.
	sh("ctr run -d sealos.test/busybox:1 sleeper /bin/busybox sleep 600 && ctr task pause sleeper")
	if st, _ := os.ReadFile(filepath.Join(cg("freezer"), "default", "sleeper", "freezer.state")); strings.TrimSpace(string(st)) != "FROZEN" {
		t.Errorf("the paused container's freezer.state is %q", st)
	}
	if _, err := os.Stat(filepath.Join(cg("memory"), "default", "sleeper", "cgroup.procs")); err != nil {
		t.Fatalf("the container's cgroup is not under host 1's: %v", err)
	}
	// Every process of host 1, seen from this machine: containerd, shims, the container.
	var procs []string
	err = filepath.WalkDir(cg("pids"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "cgroup.procs" {
			b, err := os.ReadFile(p)
			procs = append(procs, strings.Fields(string(b))...)
			return err
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{}
	for _, f := range procs {
		p, _ := strconv.Atoi(f)
		pids = append(pids, p)
	}
	t.Logf("processes of host 1: %v (%s)", pids, sh("ps -o pid=,comm= -p "+strings.Join(procs, ",")+" | tr '\\n' ' '"))
	return pids
}

// assertStopped checks that nothing of the set is left on this machine.
func assertStopped(t *testing.T, set int, pids []int) {
	t.Helper()
	// Killed, they are zombies until their parent (init) reaps them: wait a little for that.
	for _, p := range pids {
		for try := 0; ; try++ {
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			if err != nil {
				break
			}
			if try == 50 {
				if f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:])); len(f) > 0 && f[0] != "Z" {
					t.Errorf("process %d still runs after stop: %s", p, st)
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	left, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/sealos-nodes/%d-*", set))
	if len(left) > 0 {
		t.Errorf("cgroups left after stop: %v", left)
	}
	for _, check := range []struct{ cmd, bad string }{
		{"ip netns list", fmt.Sprintf("sealos-%d-", set)},
		{"ip -o link show", fmt.Sprintf("sealos%dh", set)},
		{"ip -o link show", fmt.Sprintf("sealos-br%d:", set)},
		{"iptables -S FORWARD", fmt.Sprintf("sealos-br%d ", set)},
	} {
		out, err := exec.Command("sh", "-c", check.cmd).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v: %s", check.cmd, err, out)
		}
		if strings.Contains(string(out), check.bad) {
			t.Errorf("after stop, %s shows %s:\n%s", check.cmd, check.bad, out)
		}
	}
}

// cgroupLines is how many hierarchies a process is in here (lines of /proc/self/cgroup).
func cgroupLines(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	return len(strings.Split(strings.TrimSpace(string(b)), "\n"))
}

// sshRun runs cmd on ip as root with the set's key and returns its trimmed output.
func sshRun(t *testing.T, s *Set, ip, cmd string) string {
	t.Helper()
	b, err := os.ReadFile(s.Key)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort(ip, strconv.Itoa(s.Port)), &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh %s: %v", ip, err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("ssh %s %s: %v: %s", ip, cmd, err, out)
	}
	return strings.TrimSpace(string(out))
}
