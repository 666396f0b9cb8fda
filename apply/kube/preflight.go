package kube

import (
	"bufio"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// ELFArch is the architecture of an ELF executable, in uname -m terms (x86_64, aarch64...).
// Only the header is read.
func ELFArch(r io.Reader) (string, error) {
	var h [20]byte
	if _, err := io.ReadFull(r, h[:]); err != nil || string(h[:4]) != elf.ELFMAG {
		return "", errors.New("not an ELF executable")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if elf.Data(h[elf.EI_DATA]) == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	machine := elf.Machine(bo.Uint16(h[18:]))
	switch machine {
	case elf.EM_X86_64:
		return "x86_64", nil
	case elf.EM_AARCH64:
		return "aarch64", nil
	case elf.EM_386:
		return "i686", nil
	case elf.EM_ARM:
		return "armv7l", nil
	case elf.EM_PPC64:
		return "ppc64le", nil
	case elf.EM_S390:
		return "s390x", nil
	case elf.EM_RISCV:
		return "riscv64", nil
	case elf.EM_LOONGARCH:
		return "loongarch64", nil
	}
	return "", fmt.Errorf("unknown ELF machine %v", machine)
}

// GoArch names an architecture of uname -m the way images do (amd64, arm64...).
func GoArch(uname string) string {
	switch uname {
	case "x86_64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "i386", "i686":
		return "386"
	case "armv7l", "armv6l":
		return "arm"
	}
	return uname
}

// Ports a host must have free before it joins: a master serves the apiserver, etcd, the
// kubelet, the controller manager and the scheduler; a node the kubelet.
var (
	MasterPorts = []int{APIServerPort, 2379, 2380, 10250, 10257, 10259}
	NodePorts   = []int{10250}
)

// Facts is what the engine learns of a host before it ships anything.
type Facts struct {
	Arch      string // uname -m
	Hostname  string
	Listening map[int]bool // TCP ports something listens on (any address)
	Swap      bool         // /proc/swaps lists a device or file
	Joined    bool         // the host already is a member of this cluster
}

// FactsScript prints what ParseFacts reads, in sections.
func FactsScript(joinedMarker string) string {
	return fmt.Sprintf(`echo '## arch'; uname -m
echo '## hostname'; hostname
echo '## swaps'; cat /proc/swaps 2>/dev/null || true
echo '## tcp'; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null || true
echo '## joined'; if [ -f %s ]; then echo yes; fi`, joinedMarker)
}

// ParseFacts reads the output of FactsScript.
func ParseFacts(out string) (Facts, error) {
	f := Facts{Listening: map[int]bool{}}
	var section string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if s, ok := strings.CutPrefix(line, "## "); ok {
			section = s
			continue
		}
		if line == "" {
			continue
		}
		switch section {
		case "arch":
			f.Arch = line
		case "hostname":
			f.Hostname = strings.ToLower(line)
		case "swaps":
			if !strings.HasPrefix(line, "Filename") {
				f.Swap = true
			}
		case "tcp":
			// sl local_address rem_address st ...; st 0A is LISTEN.
			fs := strings.Fields(line)
			if len(fs) < 4 || fs[3] != "0A" {
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if i < 0 {
				continue
			}
			if p, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil {
				f.Listening[int(p)] = true
			}
		case "joined":
			f.Joined = line == "yes"
		}
	}
	if f.Arch == "" || f.Hostname == "" {
		return f, fmt.Errorf("could not read the host's architecture and name from %q", out)
	}
	return f, nil
}

// Check returns why a host cannot join as a master or node, or nil. A host that already
// joined is not checked for ports: its own cluster holds them.
func (f Facts) Check(master bool) error {
	if f.Swap {
		return fmt.Errorf("swap is on (the kubelet refuses to run with swap): swapoff -a, and remove it from /etc/fstab")
	}
	if f.Joined {
		return nil
	}
	ports := NodePorts
	if master {
		ports = MasterPorts
	}
	var taken []string
	for _, p := range ports {
		if f.Listening[p] {
			taken = append(taken, strconv.Itoa(p))
		}
	}
	sort.Strings(taken)
	switch len(taken) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("port %s is taken (another Kubernetes or program listens on it): stop it, or 'sealos reset' the cluster that owns it", taken[0])
	}
	return fmt.Errorf("ports %s are taken (another Kubernetes or program listens on them): stop it, or 'sealos reset' the cluster that owns it", strings.Join(taken, ", "))
}
