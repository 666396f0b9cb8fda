// Package kube is what the apply engine needs to bring up Kubernetes with kubeadm from a
// rootfs image that carries it: the kubeadm configuration of init and join, the values a
// join needs (CA hash, certificate key), the checks a host must pass first, the pod network
// between nodes, and the local API balancer of nodes in front of several masters. It runs
// nothing on hosts itself: package apply does, through its transports and state.
package kube

import (
	"fmt"
	"net"
	"slices"

	"sigs.k8s.io/yaml"
)

// APIServerName is the name every host reaches the API at: /etc/hosts points it at master
// 0 (before a master serves its own), at the master itself, or at the node's balancer.
const APIServerName = "apiserver.cluster.local"

// APIServerPort is the apiservers' port, and the balancer's on nodes.
const APIServerPort = 6443

// CRISocket is containerd's CRI endpoint, as the rootfs image configures it.
const CRISocket = "unix:///run/containerd/containerd.sock"

// AdminKubeconfig is the cluster-admin kubeconfig kubeadm writes on masters.
const AdminKubeconfig = "/etc/kubernetes/admin.conf"

// Env keys of the rootfs image that shape the cluster (the image ENV gives defaults; the
// Clusterfile's spec.env and -e override them).
const (
	EnvVersion       = "kubeVersion"
	EnvPodCIDR       = "podCIDR"
	EnvServiceCIDR   = "serviceCIDR"
	EnvClusterDomain = "clusterDomain"
)

// IgnoredPreflight are kubeadm preflight checks that cannot pass on hosts without a kernel
// config file (SystemVerification reads it) and that the engine checks itself (ports and
// swap are checked before anything is shipped, with messages that name the host).
var IgnoredPreflight = []string{"SystemVerification"}

// Host is one host of the cluster as kubeadm sees it.
type Host struct {
	IP   string // address the host advertises and is reached at
	Name string // node name (the host's hostname, lower case)
}

// Cluster is what init and join configurations are made from.
type Cluster struct {
	Version       string // e.g. v1.34.4
	PodCIDR       string
	ServiceCIDR   string
	ClusterDomain string
	Masters       []Host
	// SkipPhases are kubeadm init phases left out (addon/coredns when the image has no
	// CoreDNS image).
	SkipPhases []string
}

// ClusterFromEnv reads the cluster settings from the env, with kubeadm's own defaults
// where a key is missing.
func ClusterFromEnv(env map[string]string, masters []Host) (Cluster, error) {
	c := Cluster{
		Version:       env[EnvVersion],
		PodCIDR:       env[EnvPodCIDR],
		ServiceCIDR:   env[EnvServiceCIDR],
		ClusterDomain: env[EnvClusterDomain],
		Masters:       masters,
	}
	if c.PodCIDR == "" {
		c.PodCIDR = "100.64.0.0/16"
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = "10.96.0.0/16"
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	for k, v := range map[string]string{EnvPodCIDR: c.PodCIDR, EnvServiceCIDR: c.ServiceCIDR} {
		if _, _, err := net.ParseCIDR(v); err != nil {
			return c, fmt.Errorf("env %s=%q: not a CIDR", k, v)
		}
	}
	if len(masters) == 0 {
		return c, fmt.Errorf("a Kubernetes cluster needs a master")
	}
	return c, nil
}

// The kubeadm v1beta4 and component configuration types, with only the fields we set.
type (
	arg struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	nodeRegistration struct {
		Name                  string   `json:"name,omitempty"`
		CRISocket             string   `json:"criSocket"`
		KubeletExtraArgs      []arg    `json:"kubeletExtraArgs,omitempty"`
		IgnorePreflightErrors []string `json:"ignorePreflightErrors,omitempty"`
		ImagePullPolicy       string   `json:"imagePullPolicy,omitempty"`
	}
	apiEndpoint struct {
		AdvertiseAddress string `json:"advertiseAddress"`
		BindPort         int    `json:"bindPort"`
	}
	initConfiguration struct {
		APIVersion       string           `json:"apiVersion"`
		Kind             string           `json:"kind"`
		LocalAPIEndpoint apiEndpoint      `json:"localAPIEndpoint"`
		NodeRegistration nodeRegistration `json:"nodeRegistration"`
		CertificateKey   string           `json:"certificateKey,omitempty"`
		SkipPhases       []string         `json:"skipPhases,omitempty"`
	}
	component struct {
		CertSANs  []string `json:"certSANs,omitempty"`
		ExtraArgs []arg    `json:"extraArgs,omitempty"`
	}
	clusterConfiguration struct {
		APIVersion           string `json:"apiVersion"`
		Kind                 string `json:"kind"`
		KubernetesVersion    string `json:"kubernetesVersion"`
		ControlPlaneEndpoint string `json:"controlPlaneEndpoint"`
		ImageRepository      string `json:"imageRepository"`
		Networking           struct {
			PodSubnet     string `json:"podSubnet"`
			ServiceSubnet string `json:"serviceSubnet"`
			DNSDomain     string `json:"dnsDomain"`
		} `json:"networking"`
		APIServer         component `json:"apiServer"`
		ControllerManager component `json:"controllerManager"`
	}
	kubeletConfiguration struct {
		APIVersion               string `json:"apiVersion"`
		Kind                     string `json:"kind"`
		CgroupDriver             string `json:"cgroupDriver"`
		FailCgroupV1             bool   `json:"failCgroupV1"`
		ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint"`
	}
	kubeProxyConfiguration struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Mode       string `json:"mode"`
		Conntrack  struct {
			// MaxPerCore 0 leaves nf_conntrack_max alone: it is the kernel's, not the
			// node's, and kube-proxy cannot set it from a network namespace.
			MaxPerCore int `json:"maxPerCore"`
		} `json:"conntrack"`
	}
	discovery struct {
		BootstrapToken struct {
			APIServerEndpoint string   `json:"apiServerEndpoint"`
			Token             string   `json:"token"`
			CACertHashes      []string `json:"caCertHashes"`
		} `json:"bootstrapToken"`
	}
	joinControlPlane struct {
		LocalAPIEndpoint apiEndpoint `json:"localAPIEndpoint"`
		CertificateKey   string      `json:"certificateKey"`
	}
	joinConfiguration struct {
		APIVersion       string            `json:"apiVersion"`
		Kind             string            `json:"kind"`
		Discovery        discovery         `json:"discovery"`
		NodeRegistration nodeRegistration  `json:"nodeRegistration"`
		ControlPlane     *joinControlPlane `json:"controlPlane,omitempty"`
	}
)

const kubeadmAPI = "kubeadm.k8s.io/v1beta4"

func registration(h Host) nodeRegistration {
	return nodeRegistration{
		Name:                  h.Name,
		CRISocket:             CRISocket,
		KubeletExtraArgs:      []arg{{"node-ip", h.IP}},
		IgnorePreflightErrors: slices.Clone(IgnoredPreflight),
		ImagePullPolicy:       "IfNotPresent",
	}
}

// InitConfig is the kubeadm configuration of `kubeadm init` on the first master: init,
// cluster, kubelet and kube-proxy documents. certKey encrypts the control-plane
// certificates kubeadm uploads for the other masters.
func InitConfig(c Cluster, certKey string) ([]byte, error) {
	m := c.Masters[0]
	init := initConfiguration{
		APIVersion: kubeadmAPI, Kind: "InitConfiguration",
		LocalAPIEndpoint: apiEndpoint{AdvertiseAddress: m.IP, BindPort: APIServerPort},
		NodeRegistration: registration(m),
		CertificateKey:   certKey,
		SkipPhases:       c.SkipPhases,
	}
	cc := clusterConfiguration{
		APIVersion: kubeadmAPI, Kind: "ClusterConfiguration",
		KubernetesVersion:    c.Version,
		ControlPlaneEndpoint: fmt.Sprintf("%s:%d", APIServerName, APIServerPort),
		ImageRepository:      "registry.k8s.io",
	}
	cc.Networking.PodSubnet, cc.Networking.ServiceSubnet, cc.Networking.DNSDomain = c.PodCIDR, c.ServiceCIDR, c.ClusterDomain
	// Every name and address a client may reach an apiserver by: the shared name, each
	// master, and 127.0.0.1 (the balancer on nodes).
	cc.APIServer.CertSANs = []string{APIServerName, "127.0.0.1", "localhost"}
	for _, h := range c.Masters {
		cc.APIServer.CertSANs = append(cc.APIServer.CertSANs, h.IP)
	}
	// Nodes get their pod ranges from the controller manager; the engine routes them.
	cc.ControllerManager.ExtraArgs = []arg{{"allocate-node-cidrs", "true"}, {"cluster-cidr", c.PodCIDR}}
	kc := kubeletConfiguration{
		APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration",
		CgroupDriver: "cgroupfs", FailCgroupV1: false, ContainerRuntimeEndpoint: CRISocket,
	}
	kp := kubeProxyConfiguration{APIVersion: "kubeproxy.config.k8s.io/v1alpha1", Kind: "KubeProxyConfiguration", Mode: "iptables"}
	return docs(init, cc, kc, kp)
}

// Join is what a host needs to join: a bootstrap token, the CA's public key hash, and for
// masters the key of the uploaded certificates.
type Join struct {
	Token   string
	CAHash  string
	CertKey string
}

// JoinConfig is the kubeadm configuration of `kubeadm join` for h, as a control-plane
// member when master is set.
func JoinConfig(h Host, j Join, master bool) ([]byte, error) {
	jc := joinConfiguration{APIVersion: kubeadmAPI, Kind: "JoinConfiguration", NodeRegistration: registration(h)}
	jc.Discovery.BootstrapToken.APIServerEndpoint = fmt.Sprintf("%s:%d", APIServerName, APIServerPort)
	jc.Discovery.BootstrapToken.Token = j.Token
	jc.Discovery.BootstrapToken.CACertHashes = []string{j.CAHash}
	if master {
		if j.CertKey == "" {
			return nil, fmt.Errorf("join %s as a master: no certificate key", h.IP)
		}
		jc.ControlPlane = &joinControlPlane{LocalAPIEndpoint: apiEndpoint{AdvertiseAddress: h.IP, BindPort: APIServerPort}, CertificateKey: j.CertKey}
	}
	return docs(jc)
}

func docs(vs ...any) ([]byte, error) {
	var out []byte
	for i, v := range vs {
		b, err := yaml.Marshal(v)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, "---\n"...)
		}
		out = append(out, b...)
	}
	return out, nil
}
