package mirrorconfig

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"text/template"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostsFile is the part of containerd's hosts.toml schema we write.
type hostsFile struct {
	Server string `toml:"server"`
	Host   map[string]struct {
		Capabilities []string `toml:"capabilities"`
		SkipVerify   *bool    `toml:"skip_verify"`
	} `toml:"host"`
}

// registriesFile is the part of containers-registries.conf(5) v2 we write.
type registriesFile struct {
	Registry []struct {
		Prefix   string `toml:"prefix"`
		Location string `toml:"location"`
		Insecure bool   `toml:"insecure"`
		Mirror   []struct {
			Location string `toml:"location"`
			Insecure bool   `toml:"insecure"`
		} `toml:"mirror"`
	} `toml:"registry"`
}

func TestContainerdHosts(t *testing.T) {
	dir := t.TempDir()
	paths, err := WriteContainerd(dir, Config{Hub: "sealos.hub:5000", Registries: []string{"quay.io", "docker.io"}, HubPush: true})
	require.NoError(t, err)
	require.Len(t, paths, 3)

	var h hostsFile
	_, err = toml.DecodeFile(filepath.Join(dir, "docker.io", "hosts.toml"), &h)
	require.NoError(t, err)
	assert.Equal(t, "https://registry-1.docker.io", h.Server)
	require.Contains(t, h.Host, "http://sealos.hub:5000")
	assert.Equal(t, []string{"pull", "resolve"}, h.Host["http://sealos.hub:5000"].Capabilities)
	assert.Nil(t, h.Host["http://sealos.hub:5000"].SkipVerify)

	h = hostsFile{}
	_, err = toml.DecodeFile(filepath.Join(dir, "quay.io", "hosts.toml"), &h)
	require.NoError(t, err)
	assert.Equal(t, "https://quay.io", h.Server)

	h = hostsFile{}
	_, err = toml.DecodeFile(filepath.Join(dir, "sealos.hub:5000", "hosts.toml"), &h)
	require.NoError(t, err)
	assert.Equal(t, "http://sealos.hub:5000", h.Server)
	assert.Contains(t, h.Host["http://sealos.hub:5000"].Capabilities, "push")

	// HTTPS with skip_verify, and no fallback to the internet
	files, err := ContainerdHosts(Config{Hub: "10.0.0.2:5000", Registries: []string{"docker.io"}, HTTPS: true, SkipVerify: true, NoFallback: true})
	require.NoError(t, err)
	h = hostsFile{}
	_, err = toml.Decode(string(files[0].Content), &h)
	require.NoError(t, err)
	assert.Equal(t, "https://10.0.0.2:5000", h.Server)
	hh := h.Host["https://10.0.0.2:5000"]
	require.NotNil(t, hh.SkipVerify)
	assert.True(t, *hh.SkipVerify)
}

func TestRegistriesConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "registries.conf.d", "50-sealos.conf")
	written, err := WriteRegistriesConf(p, Config{Hub: "sealos.hub:5000", Registries: []string{"docker.io", "ghcr.io"}})
	require.NoError(t, err)
	assert.Equal(t, p, written)
	var r registriesFile
	_, err = toml.DecodeFile(p, &r)
	require.NoError(t, err)
	require.Len(t, r.Registry, 3)
	assert.Equal(t, "docker.io", r.Registry[0].Prefix)
	assert.Equal(t, "docker.io", r.Registry[0].Location)
	require.Len(t, r.Registry[0].Mirror, 1)
	assert.Equal(t, "sealos.hub:5000/docker.io", r.Registry[0].Mirror[0].Location)
	assert.True(t, r.Registry[0].Mirror[0].Insecure)
	assert.Equal(t, "sealos.hub:5000", r.Registry[2].Location)

	// a registry with a port: the hub's namespace has "_" for ":"
	b, err := RegistriesConf(Config{Hub: "h:5000", Registries: []string{"myreg:5000"}})
	require.NoError(t, err)
	r = registriesFile{}
	_, err = toml.Decode(string(b), &r)
	require.NoError(t, err)
	assert.Equal(t, "myreg:5000", r.Registry[0].Prefix)
	assert.Equal(t, "h:5000/myreg_5000", r.Registry[0].Mirror[0].Location)

	b, err = RegistriesConf(Config{Hub: "h:5000", Registries: []string{"docker.io"}, NoFallback: true, HTTPS: true})
	require.NoError(t, err)
	r = registriesFile{}
	_, err = toml.Decode(string(b), &r)
	require.NoError(t, err)
	assert.Equal(t, "h:5000/docker.io", r.Registry[0].Location)
	assert.Empty(t, r.Registry[0].Mirror)
	assert.False(t, r.Registry[0].Insecure)
}

func TestTemplates(t *testing.T) {
	dir := t.TempDir()
	paths, err := WriteContainerd(dir, Config{Hub: TemplateHub, Registries: []string{"docker.io"}, Template: true})
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(dir, "docker.io", "hosts.toml.tmpl")}, paths)
	b, err := os.ReadFile(paths[0])
	require.NoError(t, err)
	assert.Contains(t, string(b), `[host."http://{{ .registryDomain }}:{{ .registryPort }}"]`)
	// rendered as the apply engine renders etc/**/*.tmpl (Go text/template, the env as data)
	var out bytes.Buffer
	require.NoError(t, template.Must(template.New("h").Parse(string(b))).Execute(&out,
		map[string]string{"registryDomain": "sealos.hub", "registryPort": "5000"}))
	var h hostsFile
	_, err = toml.Decode(out.String(), &h)
	require.NoError(t, err)
	assert.Contains(t, h.Host, "http://sealos.hub:5000")

	p, err := WriteRegistriesConf(filepath.Join(dir, "50-sealos.conf"), Config{Hub: TemplateHub, Registries: []string{"docker.io"}, Template: true})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "50-sealos.conf.tmpl"), p)
	b, err = os.ReadFile(p)
	require.NoError(t, err)
	out.Reset()
	require.NoError(t, template.Must(template.New("r").Parse(string(b))).Execute(&out,
		map[string]string{"registryDomain": "sealos.hub", "registryPort": "5000"}))
	var r registriesFile
	_, err = toml.Decode(out.String(), &r)
	require.NoError(t, err)
	assert.Equal(t, "sealos.hub:5000/docker.io", r.Registry[0].Mirror[0].Location)

	_, err = ContainerdHosts(Config{Hub: TemplateHub, Template: true, HubPush: true})
	assert.Error(t, err)
	_, err = ContainerdHosts(Config{Hub: "a/b"})
	assert.Error(t, err)
	_, err = ContainerdHosts(Config{Hub: "h:1", Registries: []string{"docker.io/library"}})
	assert.Error(t, err)
}
