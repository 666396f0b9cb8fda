package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cluster-image/sealos/apply"
	"github.com/cluster-image/sealos/apply/clusterfile"
	"github.com/cluster-image/sealos/apply/plan"
	"github.com/cluster-image/sealos/apply/ship"
	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/store"
)

func init() { addCommand(newRunCmd) }

// clusterFlags are the flags of the commands that apply a cluster (run, apply, add).
type clusterFlags struct {
	cluster     string
	env         []string
	force       bool
	timeout     time.Duration
	parallel    int
	compression string
	output      string
	noPull      bool
}

func (f *clusterFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.cluster, "cluster", "default", "name of the cluster (its state is <root>/clusters/<name>)")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "KEY=VALUE for templates and commands (repeatable; recorded in spec.env); over the image ENV, under host env")
	fs.BoolVar(&f.force, "force", false, "send every file and run every command again")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Minute, "time limit of each remote command")
	fs.IntVar(&f.parallel, "parallel", 16, "hosts worked on at once")
	fs.StringVar(&f.compression, "compress", "", "compression of shipped files: zstd, gzip, none (default: zstd if the host has it, else gzip)")
	fs.StringVarP(&f.output, "output", "o", "text", "result format: text or json (the state, passwords redacted)")
	fs.BoolVar(&f.noPull, "no-pull", false, "fail instead of pulling images missing from the local store")
}

func (f *clusterFlags) check() error {
	if err := checkOutput(f.output); err != nil {
		return err
	}
	if err := ship.CheckCompression(f.compression); err != nil {
		return fmt.Errorf("--compress: %w", err)
	}
	return atLeastOne("--parallel", f.parallel)
}

// sshFlags are the login flags of run and add.
type sshFlags struct {
	user, passwd, pk, pkPasswd string
	port                       uint16
}

func (f *sshFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.user, "user", "u", "root", "SSH user on the hosts")
	fs.StringVarP(&f.passwd, "passwd", "p", "", "SSH password (prefer a key; also $SEALOS_SSH_PASSWORD)")
	fs.StringVarP(&f.pk, "pk", "i", "", "SSH private key file (default ~/.ssh/id_ed25519, ~/.ssh/id_rsa)")
	fs.StringVar(&f.pkPasswd, "pk-passwd", "", "passphrase of the private key")
	fs.Uint16Var(&f.port, "port", 22, "SSH port")
}

func (f *sshFlags) apply(c *clusterfile.Cluster, changed func(string) bool) {
	if changed("user") || c.Spec.SSH.User == "" {
		c.Spec.SSH.User = f.user
	}
	pw := f.passwd
	if pw == "" {
		pw = os.Getenv("SEALOS_SSH_PASSWORD")
	}
	if pw != "" {
		c.Spec.SSH.Passwd = pw
	}
	if f.pk != "" {
		c.Spec.SSH.Pk = f.pk
	}
	if f.pkPasswd != "" {
		c.Spec.SSH.PkPasswd = f.pkPasswd
	}
	if changed("port") || c.Spec.SSH.Port == 0 {
		c.Spec.SSH.Port = f.port
	}
}

// splitIPs splits comma-separated IP lists.
func splitIPs(s []string) []string {
	var out []string
	for _, v := range s {
		for _, ip := range strings.Split(v, ",") {
			if ip = strings.TrimSpace(ip); ip != "" {
				out = append(out, ip)
			}
		}
	}
	return out
}

// applyCluster applies c and prints the result.
func applyCluster(cmd *cobra.Command, c *clusterfile.Cluster, f *clusterFlags) error {
	ctx := cmd.Context()
	if err := f.check(); err != nil {
		return err
	}
	st, err := store.Open(global.root)
	if err != nil {
		return err
	}
	var pull func(ctx context.Context, ref string) error
	if !f.noPull {
		pull = func(ctx context.Context, ref string) error {
			fmt.Fprintf(cmd.ErrOrStderr(), "pulling %s\n", ref)
			_, err := client.Pull(ctx, st, ref, false, client.PolicyMissing)
			return err
		}
	}
	// -e values are recorded in spec.env (replacing the same keys), so a later run, add or
	// apply without them renders the same files.
	c.Spec.Env = mergeEnv(c.Spec.Env, f.env)
	progress := &ship.Progress{}
	stop := showProgress(cmd.ErrOrStderr(), progress)
	start := time.Now()
	got, err := apply.Apply(ctx, apply.Options{
		Root: global.root, Cluster: c, Source: plan.StoreSource(st, pull),
		Force: f.force, Out: cmd.ErrOrStderr(), Timeout: f.timeout, Parallel: f.parallel,
		Compression: f.compression, Progress: progress, SealosBinary: os.Getenv("SEALOS_BINARY"),
	})
	stop()
	if got == nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.output == "json" {
		if jerr := json.NewEncoder(out).Encode(got.Redacted()); jerr != nil {
			return jerr
		}
	} else {
		fmt.Fprintf(out, "cluster %s: %s in %s (%d files, %s sent; %d host(s) already up to date)\n",
			got.Metadata.Name, got.Status.Phase, time.Since(start).Round(time.Millisecond),
			progress.Files.Load(), mib(progress.Raw.Load()), progress.Skipped.Load())
	}
	if err != nil {
		return fmt.Errorf("%w\nstate: %s (a re-run finishes the job)", err, apply.StatePath(global.root, got.Metadata.Name))
	}
	return nil
}

// mergeEnv returns env with each KEY=VALUE of over replacing the same key or appended.
func mergeEnv(env, over []string) []string {
	out := append([]string(nil), env...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// showProgress prints shipped byte counts every 2 s until stop is called.
func showProgress(w io.Writer, p *ship.Progress) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if raw := p.Raw.Load(); raw != last {
					last = raw
					fmt.Fprintf(w, "shipping: %d files, %s (%s on the wire)\n", p.Files.Load(), mib(raw), mib(p.Wire.Load()))
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func newRunCmd() *cobra.Command {
	var (
		f              clusterFlags
		s              sshFlags
		masters, nodes []string
		cmds           []string
	)
	cmd := &cobra.Command{
		Use:   "run IMAGE...",
		Short: "Run cluster images on hosts",
		Long: `run takes cluster images from the local store (pulled when missing) to the hosts and runs
them: rootfs and patch images are overlaid in order and shipped to every host under
/var/lib/sealos/data/<cluster>/rootfs, application images to the first master; *.tmpl
files under etc/, scripts/ and manifests/ are rendered from the env (image ENV < spec.env
< -e < host env); the registry/ data is served from the registry host (the first master);
then the rootfs scripts (check, init-registry, init) and each image's ENTRYPOINT and CMD
run, rootfs images on every host, application images on the first master.

Only files whose content differs are sent, and a command runs again only when its image,
command or env changed (or with --force). The state is recorded after every step in
<root>/clusters/<cluster>/Clusterfile: after a failure, run again to finish the job.
On a cluster that exists, run adds the images to it and applies them on its hosts.

Kubernetes: when the rootfs carries bin/kubeadm (e.g. the image 'make kube-image' builds),
run brings a cluster up the way sealos does. Before anything is shipped, every host is
checked (the architecture kubeadm is built for, swap off, the ports of its role free). After
the registry and the rootfs scripts (which install and start containerd and the kubelet):
apiserver.cluster.local in every /etc/hosts, 'kubeadm init' on the first master, the other
masters joined one at a time, a local API balancer (sealos kube-balancer on 127.0.0.1:6443)
on nodes when there are several masters, the nodes joined --parallel at once, the pod
network (a bridge CNI per node and routes between nodes), and a wait until every node is
Ready; application images' commands then run on the first master with KUBECONFIG set. The
image ENV podCIDR, serviceCIDR, clusterDomain and kubeVersion shape the cluster (-e overrides).

Host keys: the first key a host presents is recorded in
<root>/clusters/<cluster>/known_hosts; a different key later is refused.`,
		Example: `  sealos run sealos.hub/kubernetes:v1.34.4 --masters 192.168.0.2 --nodes 192.168.0.3,192.168.0.4 -i ~/.ssh/id_ed25519
  sealos run sealos.hub/kubernetes:v1.34.4 my/app:v1 --masters 10.0.0.2,10.0.0.3,10.0.0.4 --nodes 10.0.0.5 -e podCIDR=100.80.0.0/16
  sealos run localhost:5000/my/rootfs:v1 localhost:5000/my/app:v1 --masters 10.0.0.2 -p "$PW" -e registryPort=5001
  sealos run my/app:v2 --cluster prod    # on the hosts of an existing cluster
  sealos run my/app:v2 --cmd 'kubectl apply -f manifests/custom'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c *clusterfile.Cluster
			prev, err := apply.LoadState(global.root, f.cluster)
			switch {
			case err == nil:
				c = prev
				if len(masters) > 0 || len(nodes) > 0 {
					want := append(splitIPs(masters), splitIPs(nodes)...)
					for _, ip := range want {
						if _, ok := c.HostOf(ip); !ok {
							return fmt.Errorf("cluster %q exists without host %s: use 'sealos add' to add hosts, or another --cluster", f.cluster, ip)
						}
					}
				}
				for _, ref := range args {
					if !contains(c.Spec.Image, ref) {
						c.Spec.Image = append(c.Spec.Image, ref)
					}
				}
			case errors.Is(err, os.ErrNotExist):
				if len(masters) == 0 {
					return errors.New("no cluster yet: give the hosts with --masters (and --nodes)")
				}
				c = clusterfile.New(f.cluster)
				c.AddHosts([]string{clusterfile.RoleMaster}, splitIPs(masters)...)
				if n := splitIPs(nodes); len(n) > 0 {
					c.AddHosts([]string{clusterfile.RoleNode}, n...)
				}
				c.Spec.Image = args
			default:
				return err
			}
			s.apply(c, cmd.Flags().Changed)
			if cmd.Flags().Changed("cmd") {
				c.Spec.Command = cmds
			}
			return applyCluster(cmd, c, &f)
		},
	}
	f.register(cmd.Flags())
	s.register(cmd.Flags())
	cmd.Flags().StringArrayVar(&cmds, "cmd", nil, "replace the CMD of the last image (repeatable: one shell command each; spec.command)")
	cmd.Flags().StringSliceVar(&masters, "masters", nil, "master IPs (comma separated; ip or ip:port); the first runs application images")
	cmd.Flags().StringSliceVar(&nodes, "nodes", nil, "node IPs (comma separated)")
	return cmd
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
