package clusterfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sample = `apiVersion: apps.sealos.io/v1beta1
kind: Cluster
metadata:
  name: default
spec:
  hosts:
  - ips: [192.168.0.2:22, 192.168.0.3]
    roles: [master, amd64]
    env: [HOSTVAR=1]
  - ips: [192.168.0.4]
    roles: [node, registry]
    ssh:
      port: 2222
  image:
  - labring/kubernetes:v1.25.0
  ssh:
    passwd: s3cret
    pk: /root/.ssh/id_rsa
    port: 22
    user: root
  env: [A=b]
  command: [echo hi]
---
apiVersion: apps.sealos.io/v1beta1
kind: Config
metadata:
  name: calico
spec:
  path: charts/calico/values.yaml
`

func TestParse(t *testing.T) {
	c, err := Parse([]byte(sample))
	require.NoError(t, err)
	assert.Equal(t, "default", c.Metadata.Name)
	unnamed, err := Parse([]byte(strings.Replace(sample, "  name: default\n", "", 1)))
	require.NoError(t, err)
	assert.Empty(t, unnamed.Metadata.Name, "a Clusterfile without a name leaves it to the caller (apply --cluster)")
	assert.Equal(t, []string{"192.168.0.2:22", "192.168.0.3", "192.168.0.4"}, c.IPs())
	assert.Equal(t, []string{"192.168.0.2:22", "192.168.0.3"}, c.Masters())
	assert.Equal(t, []string{"192.168.0.4"}, c.RegistryHosts())
	assert.Equal(t, uint16(2222), c.SSHFor("192.168.0.4").Port)
	assert.Equal(t, "s3cret", c.SSHFor("192.168.0.4").Passwd)
	assert.Equal(t, []string{"labring/kubernetes:v1.25.0"}, c.Spec.Image)
	assert.Equal(t, []string{"echo hi"}, c.Spec.Command)
}

func TestParseErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"bad ip":      "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nspec:\n  hosts:\n  - ips: [nope]\n    roles: [master]\n",
		"no master":   "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nspec:\n  hosts:\n  - ips: [10.0.0.1]\n    roles: [node]\n",
		"bad env":     "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nspec:\n  env: [novalue]\n",
		"unknown key": "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nspec:\n  hostz: []\n",
		"no cluster":  "apiVersion: v1\nkind: Config\n",
		"apiVersion":  "apiVersion: v2\nkind: Cluster\n",
		"twice":       "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nspec:\n  hosts:\n  - ips: [10.0.0.1, 10.0.0.1]\n    roles: [master]\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(doc))
			assert.Error(t, err)
		})
	}
}

func TestSaveModeAndRedacted(t *testing.T) {
	c, err := Parse([]byte(sample))
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "clusters", "default", "Clusterfile")
	require.NoError(t, c.Save(p))
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	back, err := Load(p)
	require.NoError(t, err)
	assert.Equal(t, c.Spec, back.Spec)

	r := c.Redacted()
	assert.Equal(t, "<redacted>", r.Spec.SSH.Passwd)
	assert.Equal(t, "s3cret", c.Spec.SSH.Passwd, "the original is untouched")
}

func TestAddRemoveHosts(t *testing.T) {
	c := New("x")
	c.AddHosts([]string{RoleMaster}, "10.0.0.1")
	c.AddHosts([]string{RoleNode}, "10.0.0.2", "10.0.0.3")
	c.AddHosts([]string{RoleNode}, "10.0.0.3", "10.0.0.4")
	assert.Equal(t, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}, c.IPs())
	c.RemoveHosts("10.0.0.2", "10.0.0.1")
	assert.Equal(t, []string{"10.0.0.3", "10.0.0.4"}, c.IPs())
	assert.Len(t, c.Spec.Hosts, 1)
}
