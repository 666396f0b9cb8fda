// Package mirrorconfig writes the client side of a mirroring hub: containerd hosts.toml
// files and a containers registries.conf (podman, buildah, skopeo, CRI-O) that send pulls
// of the listed registries to the hub, which answers them from its mirror namespace (see
// registry/server's mirror mode).
//
// containerd (config_path = "/etc/containerd/certs.d" in its CRI registry config, or
// `ctr images pull --hosts-dir`) reads <dir>/<registry>/hosts.toml:
//
//	server = "https://registry-1.docker.io"
//
//	[host."http://sealos.hub:5000"]
//	  capabilities = ["pull", "resolve"]
//
// and asks the hub /v2/<repo>/...?ns=<registry>. The containers tools cannot send ns, so
// registries.conf points them at the path prefix instead: location "sealos.hub:5000/docker.io"
// makes them ask /v2/docker.io/<repo>/..., which the hub serves from the same place.
//
// For a cluster image: run mirror-config with Template set when building the rootfs, so
// it ships etc/containerd/certs.d/<registry>/hosts.toml.tmpl (and
// etc/containers/registries.conf.d/*.conf.tmpl) whose hub address is
// "{{ .registryDomain }}:{{ .registryPort }}"; the apply engine renders etc/*.tmpl with the
// cluster's env on every node, and the rootfs' init script copies the rendered files to
// /etc/containerd/certs.d and /etc/containers/registries.conf.d.
package mirrorconfig

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// TemplateHub is the hub address of template output: the cluster image env's registry.
const TemplateHub = "{{ .registryDomain }}:{{ .registryPort }}"

// DefaultRegistries are mirrored when none are named.
var DefaultRegistries = []string{"docker.io", "registry.k8s.io", "quay.io", "ghcr.io", "gcr.io"}

// Config says which registries go to which hub, and how to reach it.
type Config struct {
	// Hub is the hub's host:port, e.g. "sealos.hub:5000".
	Hub string
	// Registries are the registries whose pulls go to the hub (DefaultRegistries if empty).
	Registries []string
	// HTTPS reaches the hub over TLS; otherwise plain HTTP.
	HTTPS bool
	// SkipVerify accepts any certificate of the hub (HTTPS only).
	SkipVerify bool
	// NoFallback leaves the upstream registry out: a pull that the hub cannot answer fails
	// instead of going to the internet. (containerd tries hosts in order and then the
	// server; with NoFallback the server is the hub itself.)
	NoFallback bool
	// HubPush adds a hosts.toml for the hub's own name that allows pushes too, so clients
	// can use it over plain HTTP.
	HubPush bool
	// Template writes *.tmpl files, for a cluster image that renders them at apply time.
	Template bool
}

// File is one generated file: Path relative to its output directory.
type File struct {
	Path    string
	Content []byte
}

func (c Config) registries() []string {
	rs := c.Registries
	if len(rs) == 0 {
		rs = DefaultRegistries
	}
	out := append([]string(nil), rs...)
	sort.Strings(out)
	return out
}

func (c Config) check() error {
	if c.Hub == "" || strings.ContainsAny(c.Hub, "/ \"") && c.Hub != TemplateHub {
		return fmt.Errorf("hub %q: want host:port", c.Hub)
	}
	for _, r := range c.registries() {
		if r == "" || strings.ContainsAny(r, "/ \"") {
			return fmt.Errorf("registry %q: want a registry host name such as docker.io", r)
		}
	}
	return nil
}

func (c Config) hubURL() string {
	if c.HTTPS {
		return "https://" + c.Hub
	}
	return "http://" + c.Hub
}

func (c Config) suffix() string {
	if c.Template {
		return ".tmpl"
	}
	return ""
}

// namespace is the hub's mirror namespace of a registry (registry/server.Namespace): the
// path prefix the containers tools ask for.
func namespace(registry string) string {
	return strings.ToLower(strings.ReplaceAll(registry, ":", "_"))
}

// upstreamServer is the server line of a registry: where pulls go when no host answers.
func upstreamServer(registry string) string {
	if registry == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + registry
}

// ContainerdHosts returns <registry>/hosts.toml for every registry (and the hub's own
// name with HubPush).
func ContainerdHosts(c Config) ([]File, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	var files []File
	for _, r := range c.registries() {
		var b bytes.Buffer
		fmt.Fprintf(&b, "# %s pulls go to the hub %s (written by sealos registry mirror-config)\n", r, c.Hub)
		if c.NoFallback {
			fmt.Fprintf(&b, "server = %s\n", strconv.Quote(c.hubURL()))
		} else {
			fmt.Fprintf(&b, "server = %s\n", strconv.Quote(upstreamServer(r)))
		}
		fmt.Fprintf(&b, "\n[host.%s]\n  capabilities = [\"pull\", \"resolve\"]\n", strconv.Quote(c.hubURL()))
		if c.HTTPS && c.SkipVerify {
			b.WriteString("  skip_verify = true\n")
		}
		files = append(files, File{Path: filepath.Join(r, "hosts.toml"+c.suffix()), Content: b.Bytes()})
	}
	if c.HubPush && c.Template {
		return nil, fmt.Errorf("the hub's own hosts.toml cannot be a template (its directory is named after the hub): drop HubPush or Template")
	}
	if c.HubPush {
		var b bytes.Buffer
		fmt.Fprintf(&b, "# the hub itself (written by sealos registry mirror-config)\nserver = %s\n\n[host.%s]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n",
			strconv.Quote(c.hubURL()), strconv.Quote(c.hubURL()))
		if c.HTTPS && c.SkipVerify {
			b.WriteString("  skip_verify = true\n")
		}
		files = append(files, File{Path: filepath.Join(c.Hub, "hosts.toml"+c.suffix()), Content: b.Bytes()})
	}
	return files, nil
}

// RegistriesConf returns a registries.conf (version 2) with a [[registry]] per registry
// whose mirror is the hub's path-prefix namespace for it, plus the hub itself.
func RegistriesConf(c Config) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	insecure := !c.HTTPS || c.SkipVerify
	var b bytes.Buffer
	fmt.Fprintf(&b, "# pulls of these registries go to the hub %s (written by sealos registry mirror-config)\n", c.Hub)
	for _, r := range c.registries() {
		if c.NoFallback {
			// the hub is the registry's only location: no fallback to the internet.
			fmt.Fprintf(&b, "\n[[registry]]\nprefix = %s\nlocation = %s\ninsecure = %t\n", strconv.Quote(r), strconv.Quote(c.Hub+"/"+namespace(r)), insecure)
			continue
		}
		fmt.Fprintf(&b, "\n[[registry]]\nprefix = %s\nlocation = %s\n", strconv.Quote(r), strconv.Quote(r))
		fmt.Fprintf(&b, "\n[[registry.mirror]]\nlocation = %s\ninsecure = %t\n", strconv.Quote(c.Hub+"/"+namespace(r)), insecure)
	}
	fmt.Fprintf(&b, "\n[[registry]]\nlocation = %s\ninsecure = %t\n", strconv.Quote(c.Hub), insecure)
	return b.Bytes(), nil
}

// WriteContainerd writes the hosts.toml files under dir and returns their paths.
func WriteContainerd(dir string, c Config) ([]string, error) {
	files, err := ContainerdHosts(c)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := writeFile(p, f.Content); err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

// WriteRegistriesConf writes the registries.conf to path (with .tmpl appended for
// Template).
func WriteRegistriesConf(path string, c Config) (string, error) {
	b, err := RegistriesConf(c)
	if err != nil {
		return "", err
	}
	path += c.suffix()
	return path, writeFile(path, b)
}

// writeFile replaces p atomically (a rename), creating its directory.
func writeFile(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("mirror config: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".mirror-config-*")
	if err != nil {
		return fmt.Errorf("mirror config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("mirror config: write %s: %w", p, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("mirror config: %w", err)
	}
	return nil
}
