package apply

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cluster-image/sealos/apply/clusterfile"
	"github.com/cluster-image/sealos/apply/kube"
	"github.com/cluster-image/sealos/apply/plan"
	"github.com/cluster-image/sealos/apply/transport"
	"github.com/cluster-image/sealos/imagespec"
)

// A rootfs that carries bin/kubeadm is a Kubernetes: after the registry and the rootfs
// scripts (which install and start containerd and the kubelet), the engine brings the
// cluster up with kubeadm. Each host keeps its progress under <data dir>/kube: the
// configurations given to kubeadm and the "joined" marker that says the host is a member,
// so a re-run never inits or joins a host twice and a half-done one is reset and redone.

const kubeadmBin = "bin/kubeadm"

// kubeRun is what the Kubernetes steps learn during one apply.
type kubeRun struct {
	mu      sync.Mutex // guards facts: joins run in parallel
	facts   map[string]kube.Facts
	cluster kube.Cluster
	// join is prepared once per run, when a host has to join.
	joinOnce sync.Once
	join     kube.Join
	joinErr  error
}

func (r *run) isKube() bool {
	t := r.plan.Rootfs[r.plan.Masters[0]]
	if t == nil {
		return false
	}
	_, ok := t.Entry(kubeadmBin)
	return ok
}

func kubeDir(cluster string) string { return path.Join(DataDir(cluster), "kube") }

func joinedMarker(cluster string) string { return path.Join(kubeDir(cluster), "joined") }

// apiserverMarker ends the /etc/hosts line of apiserver.cluster.local.
func apiserverMarker(cluster string) string { return "# sealos-apiserver:" + cluster }

// kubePreflight runs before anything is shipped: every host must be of the architecture
// the image's kubeadm is built for, have swap off and, unless it already is a member, have
// the ports of its role free. Node names (hostnames) must differ.
func (r *run) kubePreflight(ctx context.Context) error {
	p := r.plan
	rc, err := p.Rootfs[p.Masters[0]].Open(kubeadmBin)
	if err != nil {
		return &StepError{Step: "kubernetes check", Err: err}
	}
	arch, err := kube.ELFArch(rc)
	rc.Close()
	if err != nil {
		return &StepError{Step: "kubernetes check", Err: fmt.Errorf("%s of the image: %w", kubeadmBin, err)}
	}
	var mu sync.Mutex
	facts := map[string]kube.Facts{}
	err = r.pool.ForEach(ctx, p.Hosts, func(ctx context.Context, t transport.Transport) error {
		out, err := transport.Output(ctx, t, kube.FactsScript(joinedMarker(r.name)))
		if err != nil {
			return err
		}
		f, err := kube.ParseFacts(string(out))
		if err != nil {
			return err
		}
		if f.Arch != arch {
			return fmt.Errorf("the image's kubeadm is built for %s (%s) and this host is %s (%s): run an image built for %s",
				kube.GoArch(arch), arch, kube.GoArch(f.Arch), f.Arch, kube.GoArch(f.Arch))
		}
		if err := f.Check(slices.Contains(p.Masters, t.Host())); err != nil {
			return err
		}
		mu.Lock()
		facts[t.Host()] = f
		mu.Unlock()
		return nil
	})
	if err != nil {
		return &StepError{Step: "kubernetes check", Err: err}
	}
	seen := map[string]string{}
	for _, h := range p.Hosts {
		n := facts[h].Hostname
		if other, ok := seen[n]; ok {
			return &StepError{Step: "kubernetes check", Err: fmt.Errorf("hosts %s and %s have the same hostname %q: Kubernetes names nodes by hostname, give each host its own", other, h, n)}
		}
		seen[n] = h
	}
	var masters []kube.Host
	for _, m := range p.Masters {
		masters = append(masters, kube.Host{IP: hostIP(m), Name: facts[m].Hostname})
	}
	c, err := kube.ClusterFromEnv(p.Env, masters)
	if err != nil {
		return &StepError{Step: "kubernetes check", Err: err}
	}
	if !r.hasImage("coredns/coredns") {
		c.SkipPhases = []string{"addon/coredns"}
	}
	r.kube = &kubeRun{facts: facts, cluster: c}
	return nil
}

// hasImage reports whether the rootfs registry/ holds repository repo.
func (r *run) hasImage(repo string) bool {
	prefix := imagespec.DirRegistry + "/docker/registry/v2/repositories/" + repo + "/"
	for _, e := range r.plan.Rootfs[r.plan.Masters[0]].Manifest().Entries {
		if strings.HasPrefix(e.Path, prefix) {
			return true
		}
	}
	return false
}

func hostIP(h string) string {
	ip, _ := clusterfile.SplitIP(h)
	return ip
}

func (r *run) kubeHost(h string) kube.Host {
	return kube.Host{IP: hostIP(h), Name: r.fact(h).Hostname}
}

// kubernetes brings the cluster up: init on master 0, then the other masters one at a
// time, the nodes' balancer, the nodes (--parallel at once), the pod network, and waits
// until every node is Ready.
func (r *run) kubernetes(ctx context.Context) error {
	p := r.plan
	m0 := p.Masters[0]
	timed := func(name string, fn func(context.Context) error) error {
		start := time.Now()
		if err := fn(ctx); err != nil {
			return err
		}
		r.logf("kubernetes: %s done in %.1fs", name, time.Since(start).Seconds())
		return nil
	}
	var nodes []string
	for _, h := range p.Hosts {
		if !slices.Contains(p.Masters, h) {
			nodes = append(nodes, h)
		}
	}
	// The balancer runs before a node's /etc/hosts names it (a master added to a running
	// cluster moves the nodes onto it); it passes connections to the masters that answer.
	if len(p.Masters) > 1 && len(nodes) > 0 {
		if err := timed("balancer", func(ctx context.Context) error { return r.kubeBalancer(ctx, nodes) }); err != nil {
			return err
		}
	}
	if err := timed("hosts entries", func(ctx context.Context) error { return r.apiserverEntries(ctx, p.Hosts) }); err != nil {
		return err
	}
	if err := timed("init", r.kubeInit); err != nil {
		return err
	}
	if r.kube.cluster.Version == "" {
		out, err := r.output(ctx, m0, "kubeadm version -o short")
		if err != nil {
			return &StepError{Step: "kubernetes version", Err: err}
		}
		r.kube.cluster.Version = strings.TrimSpace(out)
	}
	_ = r.st.update(func(c *clusterfile.Cluster) { c.Status.Kubernetes = r.kube.cluster.Version })
	if err := timed("joins", func(ctx context.Context) error { return r.kubeJoins(ctx, nodes) }); err != nil {
		return err
	}
	if err := timed("network", r.kubeNetwork); err != nil {
		return err
	}
	return timed("wait Ready", r.kubeReady)
}

// output runs cmd on host and returns its standard output.
func (r *run) output(ctx context.Context, host, cmd string) (string, error) {
	t, err := r.pool.Get(ctx, host)
	if err != nil {
		return "", err
	}
	out, err := transport.Output(ctx, t, cmd)
	return string(out), err
}

// apiserverTarget is the address apiserver.cluster.local names on h: a master that serves
// its own apiserver names itself; the others master 0, or on nodes of a cluster with
// several masters the local balancer.
func (r *run) apiserverTarget(h string) string {
	p := r.plan
	switch {
	case h == p.Masters[0] || slices.Contains(p.Masters, h) && r.fact(h).Joined:
		return hostIP(h)
	case !slices.Contains(p.Masters, h) && len(p.Masters) > 1:
		return "127.0.0.1"
	}
	return hostIP(p.Masters[0])
}

func (r *run) apiserverEntries(ctx context.Context, hosts []string) error {
	line := func(h string) string {
		return fmt.Sprintf("%s\t%s %s", r.apiserverTarget(h), kube.APIServerName, apiserverMarker(r.name))
	}
	return r.runStep(ctx, "kube hosts entry", hosts, func(h string) string { return plan.Fingerprint(line(h)) },
		func(h string) (string, map[string]string, bool) {
			return setHostsLine(apiserverMarker(r.name), line(h)), nil, true
		})
}

// kubeInit runs kubeadm init on master 0 unless it is a member already. What a failed
// init left behind is reset first.
func (r *run) kubeInit(ctx context.Context) error {
	m0 := r.plan.Masters[0]
	if r.fact(m0).Joined {
		return r.waitAPIServer(ctx, m0)
	}
	key := kube.NewCertificateKey()
	cfg, err := kube.InitConfig(r.kube.cluster, key)
	if err != nil {
		return &StepError{Step: "kubeadm init", Err: err}
	}
	file := path.Join(kubeDir(r.name), "kubeadm-init.yaml")
	cmd := fmt.Sprintf(`set -e
if [ -e /etc/kubernetes/admin.conf ] || [ -e /etc/kubernetes/manifests/kube-apiserver.yaml ]; then
  echo "a failed kubeadm init left files: kubeadm reset first"; kubeadm reset -f >/dev/null 2>&1 || true
fi
kubeadm init --config %[1]s --upload-certs
mkdir -p /root/.kube && cp /etc/kubernetes/admin.conf /root/.kube/config
echo %[2]s >%[3]s`, transport.Quote(file), transport.Quote(r.fact(m0).Hostname), transport.Quote(joinedMarker(r.name)))
	if err := r.kubeadm(ctx, "kubeadm init", m0, file, cfg, cmd); err != nil {
		return err
	}
	r.markJoined(m0)
	// The certificates are uploaded under key for two hours: masters of this run use it.
	r.kube.joinOnce.Do(func() { r.kube.join, r.kube.joinErr = r.prepareJoin(ctx, key) })
	return nil
}

func (r *run) markJoined(h string) {
	r.kube.mu.Lock()
	defer r.kube.mu.Unlock()
	f := r.kube.facts[h]
	f.Joined = true
	r.kube.facts[h] = f
}

func (r *run) fact(h string) kube.Facts {
	r.kube.mu.Lock()
	defer r.kube.mu.Unlock()
	return r.kube.facts[h]
}

// kubeadm writes cfg to file on host and runs cmd there, recording the step.
func (r *run) kubeadm(ctx context.Context, step, host, file string, cfg []byte, cmd string) error {
	t, err := r.pool.Get(ctx, host)
	if err != nil {
		return &StepError{Step: step, Err: &transport.HostError{Host: host, Err: err}}
	}
	if err := t.Copy(ctx, strings.NewReader(string(cfg)), file, 0o600); err != nil {
		return &StepError{Step: step, Err: &transport.HostError{Host: host, Err: err}}
	}
	// The configuration holds a fresh token or certificate key, so the key never matches an
	// earlier run: whether a host needs kubeadm is the joined marker's call.
	return r.runStep(ctx, step, []string{host}, func(string) string { return plan.Fingerprint(string(cfg)) }, func(string) (string, map[string]string, bool) {
		return cmd, nil, true
	})
}

// prepareJoin makes what joins need, on master 0: a bootstrap token good for an hour, the
// CA hash, and (when certKey is empty) the control-plane certificates uploaded again under
// a new key.
func (r *run) prepareJoin(ctx context.Context, certKey string) (kube.Join, error) {
	m0 := r.plan.Masters[0]
	out, err := r.output(ctx, m0, "kubeadm token create --ttl 1h")
	if err != nil {
		return kube.Join{}, fmt.Errorf("create a join token on %s: %w", m0, err)
	}
	tok, err := kube.ParseToken(out)
	if err != nil {
		return kube.Join{}, err
	}
	ca, err := r.output(ctx, m0, "cat /etc/kubernetes/pki/ca.crt")
	if err != nil {
		return kube.Join{}, fmt.Errorf("read the cluster CA on %s: %w", m0, err)
	}
	hash, err := kube.CACertHash([]byte(ca))
	if err != nil {
		return kube.Join{}, err
	}
	if certKey == "" && len(r.plan.Masters) > 1 {
		certKey = kube.NewCertificateKey()
		if _, err := r.output(ctx, m0, "kubeadm init phase upload-certs --upload-certs --certificate-key "+certKey); err != nil {
			return kube.Join{}, fmt.Errorf("upload the control-plane certificates on %s: %w", m0, err)
		}
	}
	return kube.Join{Token: tok, CAHash: hash, CertKey: certKey}, nil
}

// kubeJoins joins the masters that are not members yet, one at a time (each adds an etcd
// member), then the nodes, --parallel at once.
func (r *run) kubeJoins(ctx context.Context, nodes []string) error {
	var masters, workers []string
	for _, m := range r.plan.Masters[1:] {
		if !r.fact(m).Joined {
			masters = append(masters, m)
		}
	}
	for _, n := range nodes {
		if !r.fact(n).Joined {
			workers = append(workers, n)
		}
	}
	if len(masters)+len(workers) == 0 {
		return nil
	}
	r.kube.joinOnce.Do(func() { r.kube.join, r.kube.joinErr = r.prepareJoin(ctx, "") })
	if r.kube.joinErr != nil {
		return &StepError{Step: "kubeadm join", Err: r.kube.joinErr}
	}
	for _, m := range masters {
		if err := r.kubeJoin(ctx, m, true); err != nil {
			return err
		}
		// Its own apiserver answers now: the master names itself.
		if err := r.apiserverEntries(ctx, []string{m}); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	var errs []error
	err := r.pool.ForEach(ctx, workers, func(ctx context.Context, t transport.Transport) error {
		if err := r.kubeJoin(ctx, t.Host(), false); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

func (r *run) kubeJoin(ctx context.Context, h string, master bool) error {
	host := r.kubeHost(h)
	cfg, err := kube.JoinConfig(host, r.kube.join, master)
	if err != nil {
		return &StepError{Step: "kubeadm join", Err: err}
	}
	// A join that failed half way left the kubelet's files and maybe a Node (the kubelet
	// registers it once it has credentials): both go before the join is done again.
	stale, err := r.output(ctx, h, "if [ -e /etc/kubernetes/kubelet.conf ] || [ -e /etc/kubernetes/bootstrap-kubelet.conf ]; then echo stale; fi")
	if err != nil {
		return &StepError{Step: "kubeadm join", Err: &transport.HostError{Host: h, Err: err}}
	}
	if strings.TrimSpace(stale) != "" {
		r.logf("%s: a failed kubeadm join left files: kubeadm reset, and node %s deleted, before joining again", h, host.Name)
		// kubeadm reset cannot stop a kubelet it did not start through systemd, and a
		// kubelet still on port 10250 fails the join's preflight: the image's service
		// script stops it first and starts it again to wait for the join's config.
		svc := transport.Quote(path.Join(r.rootfsDir(), imagespec.DirScripts, "service.sh"))
		reset := fmt.Sprintf("if [ -f %[1]s ]; then bash %[1]s stop kubelet; fi; kubeadm reset -f; if [ -f %[1]s ]; then bash %[1]s start kubelet; fi", svc)
		if _, err := r.output(ctx, h, reset); err != nil {
			return &StepError{Step: "kubeadm join", Err: &transport.HostError{Host: h, Err: err}}
		}
		if _, err := r.kubectl(ctx, "delete node "+transport.Quote(host.Name)+" --ignore-not-found"); err != nil {
			return &StepError{Step: "kubeadm join", Err: err}
		}
	}
	file := path.Join(kubeDir(r.name), "kubeadm-join.yaml")
	cmd := fmt.Sprintf(`set -e
kubeadm join --config %[1]s
if [ -e /etc/kubernetes/admin.conf ]; then mkdir -p /root/.kube && cp /etc/kubernetes/admin.conf /root/.kube/config; fi
echo %[2]s >%[3]s`, transport.Quote(file), transport.Quote(host.Name), transport.Quote(joinedMarker(r.name)))
	if err := r.kubeadm(ctx, "kubeadm join", h, file, cfg, cmd); err != nil {
		return err
	}
	r.markJoined(h)
	return nil
}

// kubeBalancer runs `sealos kube-balancer` on each node, in front of every master.
func (r *run) kubeBalancer(ctx context.Context, nodes []string) error {
	remote, sum, err := r.shipSealos(ctx, nodes, "to balance the API")
	if err != nil {
		return &StepError{Step: "kube balancer", Err: err}
	}
	args := []string{transport.Quote(remote), "kube-balancer"}
	for _, m := range r.plan.Masters {
		args = append(args, "--backend", transport.Quote(hostPort(hostIP(m), fmt.Sprint(kube.APIServerPort))))
	}
	err = r.pool.ForEach(ctx, nodes, func(ctx context.Context, t transport.Transport) error {
		started, err := startDaemon(ctx, t, DataDir(r.name), "kube-balancer", strings.Join(args, " "), sum)
		if started {
			r.logf("%s: API balancer on 127.0.0.1:%d in front of %d masters", t.Host(), kube.APIServerPort, len(r.plan.Masters))
		}
		return err
	})
	if err != nil {
		return &StepError{Step: "kube balancer", Err: err}
	}
	return nil
}

// kubectl runs kubectl as cluster admin on master 0.
func (r *run) kubectl(ctx context.Context, args string) (string, error) {
	return r.output(ctx, r.plan.Masters[0], "kubectl --kubeconfig "+kube.AdminKubeconfig+" "+args)
}

// nodes lists the cluster's nodes, waiting (bounded) until every host has one with a pod
// range.
func (r *run) nodes(ctx context.Context, timeout time.Duration) ([]kube.Node, error) {
	deadline := time.Now().Add(timeout)
	for {
		out, err := r.kubectl(ctx, "get nodes -o json")
		var nodes []kube.Node
		if err == nil {
			nodes, err = kube.ParseNodes([]byte(out))
		}
		var missing []string
		if err == nil {
			for _, h := range r.plan.Hosts {
				if n, ok := kube.ByIP(nodes, hostIP(h)); !ok || n.PodCIDR == "" {
					missing = append(missing, h)
				}
			}
			if len(missing) == 0 {
				return nodes, nil
			}
			err = fmt.Errorf("no node with a pod range for %s", strings.Join(missing, ", "))
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// kubeNetwork gives every host the CNI configuration of its pod range and routes to the
// other nodes' pod ranges.
func (r *run) kubeNetwork(ctx context.Context) error {
	nodes, err := r.nodes(ctx, 2*time.Minute)
	if err != nil {
		return &StepError{Step: "kube network", Err: err}
	}
	scripts := map[string]string{}
	for _, h := range r.plan.Hosts {
		n, _ := kube.ByIP(nodes, hostIP(h))
		cni, err := kube.CNIConfig(n.PodCIDR)
		if err != nil {
			return &StepError{Step: "kube network", Err: err}
		}
		scripts[h] = kube.NetworkScript(cni, kube.Routes(nodes, hostIP(h)))
	}
	return r.runStep(ctx, "kube network", r.plan.Hosts, func(h string) string { return plan.Fingerprint(scripts[h]) },
		func(h string) (string, map[string]string, bool) { return scripts[h], nil, true })
}

// kubeReady waits (bounded) until every host's node is Ready.
func (r *run) kubeReady(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		nodes, err := r.nodes(ctx, time.Minute)
		if err != nil {
			return &StepError{Step: "kube ready", Err: err}
		}
		var notReady []string
		for _, h := range r.plan.Hosts {
			if n, _ := kube.ByIP(nodes, hostIP(h)); !n.Ready {
				notReady = append(notReady, fmt.Sprintf("%s (%s)", n.Name, h))
			}
		}
		if len(notReady) == 0 {
			r.logf("kubernetes %s: nodes Ready: %d of %d", r.kube.cluster.Version, len(r.plan.Hosts), len(r.plan.Hosts))
			return nil
		}
		if time.Now().After(deadline) {
			return &StepError{Step: "kube ready", Err: fmt.Errorf("nodes not Ready after 5 minutes: %s (see 'kubectl describe node' and the kubelet log on them)", strings.Join(notReady, ", "))}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// waitAPIServer waits (bounded) until the apiserver of a master that already is a member
// answers, e.g. after the host restarted.
func (r *run) waitAPIServer(ctx context.Context, h string) error {
	var err error
	for range 60 {
		if _, err = r.output(ctx, h, "kubectl --kubeconfig "+kube.AdminKubeconfig+" get --raw /readyz"); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return &StepError{Step: "kube apiserver", Err: fmt.Errorf("%s: the apiserver does not answer: %w", h, err)}
}

// removeNodes takes hosts out of the Kubernetes cluster through master, which stays: each
// node is drained and deleted, and the hosts that stay forget the routes to its pods.
// (kubeadm reset, in the image's clean script, then removes a master's etcd member.)
func removeNodes(ctx context.Context, o ResetOptions, master string, staying, hosts []string) error {
	out := orDiscard(o.Out)
	t, err := o.Pool.Get(ctx, master)
	if err != nil {
		return fmt.Errorf("reach master %s to drain the nodes: %w", master, err)
	}
	kubectl := "kubectl --kubeconfig " + kube.AdminKubeconfig + " "
	list, err := transport.Output(ctx, t, kubectl+"get nodes -o json")
	if err != nil {
		return fmt.Errorf("list the nodes on %s: %w", master, err)
	}
	nodes, err := kube.ParseNodes(list)
	if err != nil {
		return err
	}
	var gone []string
	for _, h := range hosts {
		n, ok := kube.ByIP(nodes, hostIP(h))
		if !ok {
			fmt.Fprintf(out, "%s: no node of this host in the cluster\n", h)
			continue
		}
		fmt.Fprintf(out, "%s: draining and deleting node %s\n", h, n.Name)
		w := newPrefixWriter(out, master+": ")
		cmd := fmt.Sprintf("%[1]sdrain %[2]s --ignore-daemonsets --delete-emptydir-data --force --timeout=120s && %[1]sdelete node %[2]s", kubectl, transport.Quote(n.Name))
		err := t.Run(ctx, cmd, transport.RunOptions{Stdout: w, Stderr: w})
		w.Flush()
		if err != nil {
			return fmt.Errorf("drain node %s (%s): %w", n.Name, h, err)
		}
		if n.PodCIDR != "" {
			gone = append(gone, n.PodCIDR)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	var keep []string
	for _, h := range staying {
		if !slices.Contains(hosts, h) {
			keep = append(keep, h)
		}
	}
	var del strings.Builder
	for _, cidr := range gone {
		fmt.Fprintf(&del, "ip route del %s proto %d 2>/dev/null || true; ", cidr, kube.RouteProto)
	}
	return o.Pool.ForEach(ctx, keep, func(ctx context.Context, t transport.Transport) error {
		return t.Run(ctx, del.String(), transport.RunOptions{})
	})
}
