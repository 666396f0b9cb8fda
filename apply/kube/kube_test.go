package kube

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

func splitDocs(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, d := range strings.Split(string(b), "\n---\n") {
		var m map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(d), &m), d)
		out = append(out, m)
	}
	return out
}

func field(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

func TestInitConfig(t *testing.T) {
	c, err := ClusterFromEnv(map[string]string{EnvVersion: "v1.34.4", EnvPodCIDR: "100.70.0.0/16"},
		[]Host{{IP: "10.0.0.2", Name: "m0"}, {IP: "10.0.0.3", Name: "m1"}})
	require.NoError(t, err)
	c.SkipPhases = []string{"addon/coredns"}
	b, err := InitConfig(c, "abc")
	require.NoError(t, err)
	docs := splitDocs(t, b)
	require.Len(t, docs, 4)
	init, cc, kc, kp := docs[0], docs[1], docs[2], docs[3]
	assert.Equal(t, "kubeadm.k8s.io/v1beta4", init["apiVersion"])
	assert.Equal(t, "InitConfiguration", init["kind"])
	assert.Equal(t, "10.0.0.2", field(init, "localAPIEndpoint", "advertiseAddress"))
	assert.Equal(t, "m0", field(init, "nodeRegistration", "name"))
	assert.Equal(t, CRISocket, field(init, "nodeRegistration", "criSocket"))
	assert.Equal(t, []any{map[string]any{"name": "node-ip", "value": "10.0.0.2"}}, field(init, "nodeRegistration", "kubeletExtraArgs"))
	assert.Equal(t, "abc", init["certificateKey"])
	assert.Equal(t, []any{"addon/coredns"}, init["skipPhases"])

	assert.Equal(t, "ClusterConfiguration", cc["kind"])
	assert.Equal(t, "v1.34.4", cc["kubernetesVersion"])
	assert.Equal(t, "apiserver.cluster.local:6443", cc["controlPlaneEndpoint"])
	assert.Equal(t, "100.70.0.0/16", field(cc, "networking", "podSubnet"))
	assert.Equal(t, "10.96.0.0/16", field(cc, "networking", "serviceSubnet"))
	assert.Equal(t, "cluster.local", field(cc, "networking", "dnsDomain"))
	assert.Equal(t, []any{"apiserver.cluster.local", "127.0.0.1", "localhost", "10.0.0.2", "10.0.0.3"}, field(cc, "apiServer", "certSANs"))

	assert.Equal(t, "KubeletConfiguration", kc["kind"])
	assert.Equal(t, "cgroupfs", kc["cgroupDriver"])
	assert.Equal(t, false, kc["failCgroupV1"])
	assert.Equal(t, "KubeProxyConfiguration", kp["kind"])
	assert.Equal(t, "iptables", kp["mode"])
	assert.EqualValues(t, 0, field(kp, "conntrack", "maxPerCore"))
}

func TestClusterFromEnvRefusesBadCIDR(t *testing.T) {
	_, err := ClusterFromEnv(map[string]string{EnvPodCIDR: "100.64.0.0"}, []Host{{IP: "10.0.0.2"}})
	assert.ErrorContains(t, err, "podCIDR")
	_, err = ClusterFromEnv(nil, nil)
	assert.ErrorContains(t, err, "master")
}

func TestJoinConfig(t *testing.T) {
	j := Join{Token: "abcdef.0123456789abcdef", CAHash: "sha256:00", CertKey: "k"}
	b, err := JoinConfig(Host{IP: "10.0.0.4", Name: "n1"}, j, false)
	require.NoError(t, err)
	d := splitDocs(t, b)[0]
	assert.Equal(t, "JoinConfiguration", d["kind"])
	assert.Equal(t, "apiserver.cluster.local:6443", field(d, "discovery", "bootstrapToken", "apiServerEndpoint"))
	assert.Equal(t, j.Token, field(d, "discovery", "bootstrapToken", "token"))
	assert.Equal(t, []any{"sha256:00"}, field(d, "discovery", "bootstrapToken", "caCertHashes"))
	assert.Equal(t, "n1", field(d, "nodeRegistration", "name"))
	assert.Nil(t, d["controlPlane"], "a node joins without controlPlane")

	b, err = JoinConfig(Host{IP: "10.0.0.3", Name: "m1"}, j, true)
	require.NoError(t, err)
	d = splitDocs(t, b)[0]
	assert.Equal(t, "10.0.0.3", field(d, "controlPlane", "localAPIEndpoint", "advertiseAddress"))
	assert.Equal(t, "k", field(d, "controlPlane", "certificateKey"))

	_, err = JoinConfig(Host{IP: "10.0.0.3"}, Join{Token: j.Token}, true)
	assert.Error(t, err, "a master cannot join without the certificate key")
}

// TestCACertHash checks the hash against kubeadm's documented recipe: openssl x509 -pubkey
// | openssl pkey -pubin -outform der | sha256sum.
func TestCACertHash(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	got, err := CACertHash(caPEM)
	require.NoError(t, err)

	_, err = exec.LookPath("openssl")
	require.NoError(t, err, "openssl is installed by hack/deps.sh")
	cmd := exec.Command("sh", "-c", "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1")
	cmd.Stdin = bytes.NewReader(caPEM)
	out, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, "sha256:"+strings.TrimSpace(string(out)), got)

	_, err = CACertHash([]byte("not pem"))
	assert.Error(t, err)
}

func TestParseToken(t *testing.T) {
	tok, err := ParseToken("W1207 warning\nabcdef.0123456789abcdef\n")
	require.NoError(t, err)
	assert.Equal(t, "abcdef.0123456789abcdef", tok)
	for _, bad := range []string{"", "abcdef", "ABCDEF.0123456789abcdef", "abc.def"} {
		_, err := ParseToken(bad)
		assert.Error(t, err, bad)
	}
	assert.Len(t, NewCertificateKey(), 64)
	assert.NotEqual(t, NewCertificateKey(), NewCertificateKey())
}

func TestParseNodes(t *testing.T) {
	b := []byte(`{"items":[
	 {"metadata":{"name":"m0"},"spec":{"podCIDR":"100.64.0.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.2"},{"type":"Hostname","address":"m0"}],"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True"}]}},
	 {"metadata":{"name":"n1"},"spec":{},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.4"}],"conditions":[{"type":"Ready","status":"False"}]}}]}`)
	nodes, err := ParseNodes(b)
	require.NoError(t, err)
	assert.Equal(t, []Node{{Name: "m0", IP: "10.0.0.2", PodCIDR: "100.64.0.0/24", Ready: true}, {Name: "n1", IP: "10.0.0.4"}}, nodes)
	n, ok := ByIP(nodes, "10.0.0.4")
	assert.True(t, ok)
	assert.Equal(t, "n1", n.Name)
	_, ok = ByIP(nodes, "10.0.0.9")
	assert.False(t, ok)
	_, err = ParseNodes([]byte("error: the server doesn't have a resource type"))
	assert.Error(t, err)
}

func TestFacts(t *testing.T) {
	out := `## arch
x86_64
## hostname
Node1
## swaps
Filename				Type		Size		Used		Priority
## tcp
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1A0B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:2382 0100007F:1A0B 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:280A 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
## joined
`
	f, err := ParseFacts(out)
	require.NoError(t, err)
	assert.Equal(t, "x86_64", f.Arch)
	assert.Equal(t, "node1", f.Hostname)
	assert.False(t, f.Swap)
	assert.False(t, f.Joined)
	assert.True(t, f.Listening[6667], "0x1A0B listens")
	assert.True(t, f.Listening[10250], "0x280A listens on tcp6")
	assert.False(t, f.Listening[9090], "0x2382 is an established connection, not a listener")
	assert.ErrorContains(t, f.Check(false), "port 10250 is taken")
	assert.ErrorContains(t, f.Check(true), "port 10250 is taken")

	f.Listening[6443] = true
	assert.ErrorContains(t, f.Check(true), "ports 10250, 6443 are taken")
	f.Joined = true
	assert.NoError(t, f.Check(true), "a member's ports are its own")
	f.Swap = true
	assert.ErrorContains(t, f.Check(true), "swap is on")

	f, err = ParseFacts("## arch\naarch64\n## hostname\nh\n## swaps\nFilename Type\n/swapfile file 1 0 -2\n## joined\nyes\n")
	require.NoError(t, err)
	assert.True(t, f.Swap)
	assert.True(t, f.Joined)
	_, err = ParseFacts("sh: uname: not found")
	assert.Error(t, err)
}

func TestELFArch(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	f, err := os.Open(exe)
	require.NoError(t, err)
	defer f.Close()
	arch, err := ELFArch(f)
	require.NoError(t, err)
	assert.Equal(t, runtime.GOARCH, GoArch(arch))
	_, err = ELFArch(strings.NewReader("#!/bin/sh\necho hi\n"))
	assert.Error(t, err)
	// An arm64 ELF header: EM_AARCH64 (183) at offset 18.
	hdr := make([]byte, 64)
	copy(hdr, "\x7fELF\x02\x01\x01")
	hdr[18] = 183
	arch, err = ELFArch(bytes.NewReader(hdr))
	require.NoError(t, err)
	assert.Equal(t, "aarch64", arch)
	assert.Equal(t, "arm64", GoArch(arch))
}

func TestNetworkScript(t *testing.T) {
	nodes := []Node{{Name: "a", IP: "10.0.0.2", PodCIDR: "100.64.0.0/24"}, {Name: "b", IP: "10.0.0.3", PodCIDR: "100.64.1.0/24"}, {Name: "c", IP: "10.0.0.4"}}
	routes := Routes(nodes, "10.0.0.2")
	assert.Equal(t, []Route{{CIDR: "100.64.1.0/24", Via: "10.0.0.3"}}, routes, "no route to itself nor to a node without a range")
	cni, err := CNIConfig("100.64.0.0/24")
	require.NoError(t, err)
	assert.Contains(t, string(cni), `"subnet": "100.64.0.0/24"`)
	s := NetworkScript(cni, routes)
	assert.Contains(t, s, "ip route replace 100.64.1.0/24 via 10.0.0.3 proto 233")
	assert.Contains(t, s, CNIFile)
	out, err := exec.Command("bash", "-n", "-c", s).CombinedOutput()
	assert.NoError(t, err, string(out))
}
