// Package clusterfile is the Clusterfile: the desired cluster (hosts, roles, SSH login,
// images, env, commands) and the status the apply engine records after every step. It is
// compatible with the sealos Clusterfile (apiVersion apps.sealos.io/v1beta1, kind Cluster).
package clusterfile

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

const (
	APIVersion = "apps.sealos.io/v1beta1"
	Kind       = "Cluster"
)

// Roles hosts can have.
const (
	RoleMaster   = "master"
	RoleNode     = "node"
	RoleRegistry = "registry"
)

// Cluster is a Clusterfile.
type Cluster struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
	Status     Status   `json:"status,omitempty"`
}

type Metadata struct {
	Name              string    `json:"name"`
	CreationTimestamp time.Time `json:"creationTimestamp,omitempty"`
}

type Spec struct {
	Hosts   []Host   `json:"hosts,omitempty"`
	SSH     SSH      `json:"ssh,omitempty"`
	Image   []string `json:"image,omitempty"`
	Env     []string `json:"env,omitempty"`
	Command []string `json:"command,omitempty"`
}

// Host is a group of hosts that share roles, env and (optionally) SSH settings. An IP may
// carry a port ("10.0.0.2:2222").
type Host struct {
	IPS   []string `json:"ips"`
	Roles []string `json:"roles,omitempty"`
	Env   []string `json:"env,omitempty"`
	SSH   *SSH     `json:"ssh,omitempty"`
}

// SSH is how to log in. Passwd and PkPasswd are secrets: never print them (see Redacted).
type SSH struct {
	User     string `json:"user,omitempty"`
	Passwd   string `json:"passwd,omitempty"`
	Pk       string `json:"pk,omitempty"`
	PkPasswd string `json:"pkPasswd,omitempty"`
	Port     uint16 `json:"port,omitempty"`
}

// Phases of Status.Phase.
const (
	PhaseInProgress = "InProgress"
	PhaseRunning    = "ClusterSuccess"
	PhaseFailed     = "ClusterFailed"
	PhaseReset      = "Reset"
)

// Status is what the apply engine did, written after every step.
type Status struct {
	Phase  string        `json:"phase,omitempty"`
	Images []ImageStatus `json:"images,omitempty"`
	Hosts  []HostStatus  `json:"hosts,omitempty"`
	Steps  []Step        `json:"steps,omitempty"`
	// Scripts are the rootfs script labels (e.g. clean) as applied, for reset.
	Scripts map[string]string `json:"scripts,omitempty"`
	// RegistryData is where registry hosts keep the served registry data, for reset.
	RegistryData string `json:"registryData,omitempty"`
	// Kubernetes is the version kubeadm brought up, when a rootfs image carries it; delete
	// and reset then drain and reset nodes too.
	Kubernetes string    `json:"kubernetes,omitempty"`
	Message    string    `json:"message,omitempty"`
	Updated    time.Time `json:"updated,omitempty"`
}

// ImageStatus is an image that was fully applied.
type ImageStatus struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	Type   string `json:"type"`
}

// HostStatus is what a host has: the digest of each tree shipped to it (its manifest).
type HostStatus struct {
	IP    string            `json:"ip"`
	Trees map[string]string `json:"trees,omitempty"` // remote dir -> manifest digest
}

// Step results.
const (
	ResultOK      = "ok"
	ResultFailed  = "failed"
	ResultSkipped = "skipped"
)

// Step is one step of an apply on one host (or all hosts when Host is empty).
type Step struct {
	Name    string    `json:"name"`
	Host    string    `json:"host,omitempty"`
	Result  string    `json:"result"`
	Error   string    `json:"error,omitempty"`
	Key     string    `json:"key,omitempty"` // what the step applied (e.g. the image digest), to skip it next time
	Started time.Time `json:"started"`
	Elapsed string    `json:"elapsed,omitempty"`
}

// New returns an empty Cluster named name.
func New(name string) *Cluster {
	return &Cluster{APIVersion: APIVersion, Kind: Kind, Metadata: Metadata{Name: name, CreationTimestamp: time.Now().UTC()}}
}

// Parse reads a Clusterfile. A file may hold several YAML documents; the one of kind
// Cluster is used, the others (e.g. Config) are ignored.
func Parse(data []byte) (*Cluster, error) {
	for _, doc := range splitDocs(string(data)) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("parse Clusterfile: %w", err)
		}
		if head.Kind != Kind {
			continue
		}
		var c Cluster
		if err := yaml.UnmarshalStrict([]byte(doc), &c); err != nil {
			return nil, fmt.Errorf("parse Clusterfile: %w", err)
		}
		if c.APIVersion != APIVersion {
			return nil, fmt.Errorf("parse Clusterfile: apiVersion %q: want %s", c.APIVersion, APIVersion)
		}
		// An empty name is left for the caller to fill (apply -f takes --cluster then).
		return &c, c.Validate()
	}
	return nil, fmt.Errorf("parse Clusterfile: no document of kind %s", Kind)
}

func splitDocs(s string) []string {
	var docs []string
	var cur []string
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimRight(line, " \t\r") == "---" {
			docs = append(docs, strings.Join(cur, "\n"))
			cur = nil
			continue
		}
		cur = append(cur, line)
	}
	return append(docs, strings.Join(cur, "\n"))
}

// Load reads a Clusterfile from path.
func Load(path string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Save writes c to path with mode 0600 (it holds passwords), atomically.
func (c *Cluster) Save(path string) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Validate checks names, IPs, roles and env items.
func (c *Cluster) Validate() error {
	var errs []error
	if strings.ContainsAny(c.Metadata.Name, "/\\ ") || c.Metadata.Name == "." || c.Metadata.Name == ".." {
		errs = append(errs, fmt.Errorf("cluster name %q: use letters, digits, '-' and '.'", c.Metadata.Name))
	}
	seen := map[string]bool{}
	for _, h := range c.Spec.Hosts {
		for _, ip := range h.IPS {
			host, port := SplitIP(ip)
			if net.ParseIP(host) == nil && host != "localhost" {
				errs = append(errs, fmt.Errorf("host %q: not an IP address", ip))
			}
			if port < 0 {
				errs = append(errs, fmt.Errorf("host %q: bad port", ip))
			}
			if seen[host] {
				errs = append(errs, fmt.Errorf("host %s is listed twice", host))
			}
			seen[host] = true
		}
		for _, r := range h.Roles {
			if r == "" {
				errs = append(errs, fmt.Errorf("hosts %v: empty role", h.IPS))
			}
		}
		errs = append(errs, checkEnv("hosts env", h.Env))
	}
	errs = append(errs, checkEnv("spec.env", c.Spec.Env))
	if len(c.Spec.Hosts) > 0 && len(c.Masters()) == 0 {
		errs = append(errs, errors.New("no host has the role master"))
	}
	return errors.Join(errs...)
}

func checkEnv(what string, env []string) error {
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%s: %q is not KEY=VALUE", what, kv)
		}
	}
	return nil
}

// SplitIP splits "ip" or "ip:port" (port 0 when absent, -1 when bad).
func SplitIP(s string) (string, int) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return h, -1
		}
		return h, n
	}
	return s, 0
}

// IPs returns every host IP (as written, with any port) in Clusterfile order.
func (c *Cluster) IPs() []string {
	var out []string
	for _, h := range c.Spec.Hosts {
		out = append(out, h.IPS...)
	}
	return out
}

// WithRole returns the IPs of hosts that have role, in Clusterfile order.
func (c *Cluster) WithRole(role string) []string {
	var out []string
	for _, h := range c.Spec.Hosts {
		if slices.Contains(h.Roles, role) {
			out = append(out, h.IPS...)
		}
	}
	return out
}

// Masters returns the master IPs; the first is where application images run.
func (c *Cluster) Masters() []string { return c.WithRole(RoleMaster) }

// RegistryHosts are the hosts with the role registry, or else the first master.
func (c *Cluster) RegistryHosts() []string {
	if r := c.WithRole(RoleRegistry); len(r) > 0 {
		return r
	}
	if m := c.Masters(); len(m) > 0 {
		return m[:1]
	}
	return nil
}

// HostOf returns the host group ip belongs to.
func (c *Cluster) HostOf(ip string) (Host, bool) {
	for _, h := range c.Spec.Hosts {
		if slices.Contains(h.IPS, ip) {
			return h, true
		}
	}
	return Host{}, false
}

// SSHFor returns the SSH settings for ip: the host group's settings over spec.ssh.
func (c *Cluster) SSHFor(ip string) SSH {
	s := c.Spec.SSH
	if h, ok := c.HostOf(ip); ok && h.SSH != nil {
		o := *h.SSH
		if o.User != "" {
			s.User = o.User
		}
		if o.Passwd != "" {
			s.Passwd = o.Passwd
		}
		if o.Pk != "" {
			s.Pk = o.Pk
		}
		if o.PkPasswd != "" {
			s.PkPasswd = o.PkPasswd
		}
		if o.Port != 0 {
			s.Port = o.Port
		}
	}
	return s
}

// AddHosts adds ips with roles, skipping ips already present.
func (c *Cluster) AddHosts(roles []string, ips ...string) {
	var fresh []string
	for _, ip := range ips {
		if _, ok := c.HostOf(ip); !ok && !slices.Contains(fresh, ip) {
			fresh = append(fresh, ip)
		}
	}
	if len(fresh) == 0 {
		return
	}
	for i, h := range c.Spec.Hosts {
		if slices.Equal(h.Roles, roles) && h.SSH == nil && len(h.Env) == 0 {
			c.Spec.Hosts[i].IPS = append(c.Spec.Hosts[i].IPS, fresh...)
			return
		}
	}
	c.Spec.Hosts = append(c.Spec.Hosts, Host{IPS: fresh, Roles: roles})
}

// RemoveHosts removes ips; groups left empty are dropped.
func (c *Cluster) RemoveHosts(ips ...string) {
	var hosts []Host
	for _, h := range c.Spec.Hosts {
		h.IPS = slices.DeleteFunc(slices.Clone(h.IPS), func(ip string) bool { return slices.Contains(ips, ip) })
		if len(h.IPS) > 0 {
			hosts = append(hosts, h)
		}
	}
	c.Spec.Hosts = hosts
}

// Redacted returns a deep-enough copy of c with passwords and passphrases replaced, for
// printing and logging.
func (c *Cluster) Redacted() *Cluster {
	r := *c
	r.Spec.SSH = redact(c.Spec.SSH)
	r.Spec.Hosts = make([]Host, len(c.Spec.Hosts))
	for i, h := range c.Spec.Hosts {
		if h.SSH != nil {
			s := redact(*h.SSH)
			h.SSH = &s
		}
		r.Spec.Hosts[i] = h
	}
	return &r
}

func redact(s SSH) SSH {
	if s.Passwd != "" {
		s.Passwd = "<redacted>"
	}
	if s.PkPasswd != "" {
		s.PkPasswd = "<redacted>"
	}
	return s
}
