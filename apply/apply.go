// Package apply runs cluster images on hosts: it computes a plan (package plan), ships
// the trees (package ship) over SSH (package transport), starts the registry, runs the
// images' scripts and commands, and records what it did in
// <root>/clusters/<name>/Clusterfile after every step, so a re-run skips what is done and
// finishes what is not.
//
// On every host, a cluster's files live under /var/lib/sealos/data/<name>:
//
//	rootfs                     the merged, rendered rootfs (every host)
//	applications/<NN>-<image>  each application image (first master)
//	bin/sealos                 this binary, to serve the registry (registry hosts)
//	registry.pid, registry.log the registry process (registry hosts)
package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/cluster-image/sealos/apply/clusterfile"
	"github.com/cluster-image/sealos/apply/kube"
	"github.com/cluster-image/sealos/apply/plan"
	"github.com/cluster-image/sealos/apply/ship"
	"github.com/cluster-image/sealos/apply/transport"
	"github.com/cluster-image/sealos/imagespec"
)

// DataDir is where a cluster's files live on a host.
func DataDir(cluster string) string { return path.Join("/var/lib/sealos/data", cluster) }

// Options are the inputs of Apply.
type Options struct {
	Root    string               // --root: state under <root>/clusters/<name>
	Cluster *clusterfile.Cluster // the desired cluster (hosts, ssh, images, env)
	Env     []string             // -e KEY=VALUE
	Source  plan.Source          // where images come from
	// Force ships every file and runs every command again.
	Force bool
	// Out receives progress and the commands' output, each line prefixed with its host.
	Out io.Writer
	// Timeout bounds each remote command (transport.DefaultTimeout when zero).
	Timeout time.Duration
	// Parallel bounds how many hosts are worked on at once.
	Parallel int
	// SealosBinary is copied to registry hosts to serve the registry (default: this
	// executable).
	SealosBinary string
	// Compression of shipped files (ship.CompressAuto when empty).
	Compression string
	// Progress counts shipped bytes when set; OnFile is called per shipped file.
	Progress *ship.Progress
	OnFile   func(path string, size int64)
	// Dial overrides how hosts are reached (tests); default SSH per the Clusterfile.
	Pool *transport.Pool
}

// StepError is the failure of one step; the state records it too.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Apply makes the cluster look like o.Cluster says: it ships what differs, starts the
// registry and runs what has not run with the same inputs. It returns the recorded state.
func Apply(ctx context.Context, o Options) (*clusterfile.Cluster, error) {
	name := o.Cluster.Metadata.Name
	if name == "" {
		name = "default"
		o.Cluster.Metadata.Name = name
	}
	if err := o.Cluster.Validate(); err != nil {
		return nil, err
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	unlock, err := lockCluster(o.Root, name)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if err := ship.CheckCompression(o.Compression); err != nil {
		return nil, err
	}

	r := &run{o: o, name: name, out: &syncWriter{w: o.Out}}
	r.pool = o.Pool
	if r.pool == nil {
		r.pool = NewPool(o.Root, o.Cluster)
		defer r.pool.Close()
	}
	r.pool.Parallel = o.Parallel
	// Connect to the hosts while the plan is computed; failures show in the first step.
	warm := make(chan struct{})
	go func() {
		defer close(warm)
		_ = r.pool.ForEach(ctx, o.Cluster.IPs(), func(context.Context, transport.Transport) error { return nil })
	}()
	defer func() { <-warm }()
	// The plan comes before anything is recorded: an image that does not resolve (a
	// typo) leaves the state as it was, so later runs do not retry it.
	start := time.Now()
	p, err := plan.Build(ctx, plan.Options{
		Cluster: o.Cluster, Env: o.Env, Source: o.Source,
		WorkDir: path.Join(ClusterDir(o.Root, name), "work"),
	})
	if err != nil {
		return nil, err // plan's errors say "plan: ..."
	}
	r.plan = p
	for _, img := range p.Images {
		for _, w := range img.Warnings {
			r.logf("WARNING: %s", w)
		}
	}
	r.logf("plan: %d image(s), %d host(s), ready in %s", len(p.Images), len(p.Hosts), time.Since(start).Round(time.Millisecond))

	st := &state{path: StatePath(o.Root, name), c: o.Cluster}
	r.st = st
	if prev, err := LoadState(o.Root, name); err == nil {
		st.c.Status = prev.Status
		if !prev.Metadata.CreationTimestamp.IsZero() {
			st.c.Metadata.CreationTimestamp = prev.Metadata.CreationTimestamp
		}
	}
	st.forgetHosts(o.Cluster.IPs())
	if err := st.update(func(c *clusterfile.Cluster) {
		c.Status.Phase = clusterfile.PhaseInProgress
		c.Status.Message = ""
	}); err != nil {
		return nil, err
	}

	err = r.apply(ctx)
	if err != nil {
		_ = st.update(func(c *clusterfile.Cluster) {
			c.Status.Phase = clusterfile.PhaseFailed
			c.Status.Message = err.Error()
		})
		return st.c, err
	}
	return st.c, st.update(func(c *clusterfile.Cluster) {
		c.Status.Phase = clusterfile.PhaseRunning
		c.Status.Message = ""
	})
}

// NewPool returns the SSH pool for a cluster: per-host settings from the Clusterfile and
// the host-key policy "accept and record, refuse on change" in
// <root>/clusters/<name>/known_hosts.
func NewPool(root string, c *clusterfile.Cluster) *transport.Pool {
	hk := transport.NewHostKeys(path.Join(ClusterDir(root, c.Metadata.Name), "known_hosts"))
	return &transport.Pool{Config: func(host string) transport.SSHConfig {
		s := c.SSHFor(host)
		return transport.SSHConfig{User: s.User, Password: s.Passwd, KeyFile: s.Pk, KeyPassphrase: s.PkPasswd, Port: int(s.Port), HostKeys: hk}
	}}
}

type run struct {
	o    Options
	st   *state
	name string
	pool *transport.Pool
	out  *syncWriter
	plan *plan.Plan
	kube *kubeRun // when the rootfs carries Kubernetes
}

func (r *run) logf(format string, args ...any) { r.out.printf(format+"\n", args...) }

func (r *run) apply(ctx context.Context) error {
	p := r.plan
	_ = r.st.update(func(c *clusterfile.Cluster) {
		c.Status.Scripts = map[string]string{}
		for _, l := range []string{imagespec.LabelClean, imagespec.LabelCleanRegistry} {
			if v, ok := p.Labels[l]; ok {
				c.Status.Scripts[l] = v
			}
		}
	})

	type step struct {
		name string
		fn   func(context.Context) error
	}
	steps := []step{{"ship", r.shipAll}, {"registry", r.registry}, {"scripts", r.scripts}, {"commands", r.commands}}
	if r.isKube() {
		// Checked before anything is shipped; the cluster comes up once the rootfs scripts
		// installed containerd and the kubelet, before any image's commands run.
		steps = slices.Insert(steps, 3, step{"kubernetes", r.kubernetes})
		steps = slices.Insert(steps, 0, step{"kubernetes check", r.kubePreflight})
	}
	for _, s := range steps {
		begun := time.Now()
		if err := s.fn(ctx); err != nil {
			return err
		}
		r.logf("step %s: %.1fs", s.name, time.Since(begun).Seconds())
	}
	return r.st.update(func(c *clusterfile.Cluster) {
		c.Status.Images = nil
		for _, img := range p.Images {
			c.Status.Images = append(c.Status.Images, clusterfile.ImageStatus{Ref: img.Ref, Digest: img.Digest, Type: string(img.Type)})
		}
	})
}

// shipAll ships the rootfs to every host and application trees to the first master.
func (r *run) shipAll(ctx context.Context) error {
	p := r.plan
	opts := ship.Options{Force: r.o.Force, Compression: r.o.Compression, Progress: r.o.Progress, OnFile: r.o.OnFile, Log: r.out}
	type job struct {
		step, dest string
		targets    []ship.Target
	}
	var jobs []job
	if len(p.Rootfs) > 0 {
		var ts []ship.Target
		for _, h := range p.Hosts {
			ts = append(ts, ship.Target{Host: h, Tree: p.Rootfs[h]})
		}
		jobs = append(jobs, job{"ship rootfs", path.Join(DataDir(r.name), "rootfs"), ts})
	}
	for _, a := range p.Apps {
		jobs = append(jobs, job{"ship " + a.Image.Ref, path.Join(DataDir(r.name), "applications", a.Name), []ship.Target{{Host: p.Masters[0], Tree: a.Tree}}})
	}
	for _, j := range jobs {
		started := time.Now()
		res, err := ship.Ship(ctx, r.pool, j.dest, j.targets, opts)
		for _, rs := range res {
			_ = r.st.record(clusterfile.Step{Name: j.step, Host: rs.Host, Result: clusterfile.ResultOK, Key: rs.Digest,
				Started: started.UTC(), Elapsed: time.Since(started).Round(time.Millisecond).String()})
			_ = r.st.update(func(c *clusterfile.Cluster) { setTree(c, rs.Host, j.dest, rs.Digest) })
		}
		if err != nil {
			var he *transport.HostError
			for _, e := range flatten(err) {
				if errors.As(e, &he) {
					_ = r.st.record(clusterfile.Step{Name: j.step, Host: he.Host, Result: clusterfile.ResultFailed, Error: he.Err.Error(), Started: started.UTC()})
				}
			}
			return &StepError{Step: j.step, Err: err}
		}
	}
	return nil
}

func setTree(c *clusterfile.Cluster, host, dest, digest string) {
	for i := range c.Status.Hosts {
		if c.Status.Hosts[i].IP == host {
			if c.Status.Hosts[i].Trees == nil {
				c.Status.Hosts[i].Trees = map[string]string{}
			}
			c.Status.Hosts[i].Trees[dest] = digest
			return
		}
	}
	c.Status.Hosts = append(c.Status.Hosts, clusterfile.HostStatus{IP: host, Trees: map[string]string{dest: digest}})
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// runStep runs cmd on each host (in parallel, bounded) unless it already ran there with
// the same key, recording each host's result. The first failure is returned after all
// hosts finished, naming host, command, exit code and last lines of output.
func (r *run) runStep(ctx context.Context, name string, hosts []string, key func(host string) string, cmd func(host string) (string, map[string]string, bool)) error {
	var todo []string
	for _, h := range hosts {
		if !r.o.Force && r.st.done(name, h, key(h)) {
			continue
		}
		todo = append(todo, h)
	}
	if len(todo) == 0 {
		return nil
	}
	err := r.pool.ForEach(ctx, todo, func(ctx context.Context, t transport.Transport) error {
		h := t.Host()
		c, env, ok := cmd(h)
		started := time.Now()
		if !ok {
			return r.st.record(clusterfile.Step{Name: name, Host: h, Result: clusterfile.ResultSkipped, Key: key(h), Started: started.UTC()})
		}
		r.logf("%s: %s", h, name)
		w := newPrefixWriter(r.out, h+": ")
		err := t.Run(ctx, c, transport.RunOptions{Stdout: w, Stderr: w, Timeout: r.o.Timeout, Env: env})
		w.Flush()
		s := clusterfile.Step{Name: name, Host: h, Result: clusterfile.ResultOK, Key: key(h), Started: started.UTC(), Elapsed: time.Since(started).Round(time.Millisecond).String()}
		if err != nil {
			s.Result, s.Error, s.Key = clusterfile.ResultFailed, err.Error(), ""
		}
		if rerr := r.st.record(s); rerr != nil && err == nil {
			err = rerr
		}
		return err
	})
	if err != nil {
		return &StepError{Step: name, Err: err}
	}
	return nil
}

func (r *run) rootfsDir() string { return path.Join(DataDir(r.name), "rootfs") }

// scripts runs the rootfs script labels: check and init on every host, init-registry on
// registry hosts. A label's command runs in rootfs/scripts; an absent label defaults to
// "bash <label>.sh", skipped when the file does not exist.
func (r *run) scripts(ctx context.Context) error {
	p := r.plan
	if len(p.Rootfs) == 0 {
		return nil
	}
	phases := []struct {
		label string
		hosts []string
	}{
		{imagespec.LabelCheck, p.Hosts},
		{imagespec.LabelInitRegistry, p.Registry},
		{imagespec.LabelInit, p.Hosts},
	}
	for _, ph := range phases {
		command, isDefault := imagespec.ScriptCommand(p.Labels, ph.label)
		key := func(h string) string {
			return plan.Fingerprint(p.Rootfs[h].Digest(), command, p.HostEnv[h])
		}
		err := r.runStep(ctx, "script "+ph.label, ph.hosts, key, func(h string) (string, map[string]string, bool) {
			if isDefault {
				if _, ok := p.Rootfs[h].Entry(path.Join(imagespec.DirScripts, ph.label+".sh")); !ok {
					return "", nil, false
				}
			}
			return fmt.Sprintf("cd %s && %s", transport.Quote(path.Join(r.rootfsDir(), imagespec.DirScripts)), command), p.HostEnv[h], true
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// commands runs each image's ENTRYPOINT and CMD items in order: rootfs and patch images
// on every host (in parallel), application images on the first master.
func (r *run) commands(ctx context.Context) error {
	p := r.plan
	apps := map[string]plan.App{}
	for _, a := range p.Apps {
		apps[a.Image.Ref+"@"+a.Image.Digest] = a
	}
	for i, img := range p.Images {
		cmds := img.Commands()
		if len(cmds) == 0 {
			continue
		}
		hosts, dir := p.Hosts, r.rootfsDir()
		env := func(h string) map[string]string { return p.HostEnv[h] }
		if img.Type == imagespec.Application {
			a := apps[img.Ref+"@"+img.Digest]
			hosts, dir = p.Masters[:1], path.Join(DataDir(r.name), "applications", a.Name)
			appEnv := a.Env
			if r.kube != nil {
				// kubectl and helm in the image's commands reach the cluster.
				appEnv = maps.Clone(a.Env)
				appEnv["KUBECONFIG"] = kube.AdminKubeconfig
			}
			env = func(string) map[string]string { return appEnv }
		}
		for j, c := range cmds {
			name := fmt.Sprintf("cmd %d.%d %s", i, j, img.Ref)
			key := func(h string) string { return plan.Fingerprint(img.Digest, c, env(h)) }
			err := r.runStep(ctx, name, hosts, key, func(h string) (string, map[string]string, bool) {
				return fmt.Sprintf("cd %s && %s", transport.Quote(dir), plan.ExpandRefs(c, env(h))), env(h), true
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// syncWriter serializes writes of many goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) printf(format string, args ...any) {
	_, _ = s.Write([]byte(fmt.Sprintf(format, args...)))
}

// prefixWriter writes whole lines, each with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func newPrefixWriter(w io.Writer, prefix string) *prefixWriter {
	return &prefixWriter{w: w, prefix: prefix}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		_, _ = p.w.Write(append([]byte(p.prefix), p.buf[:i+1]...))
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Flush writes a last unterminated line.
func (p *prefixWriter) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		_, _ = p.w.Write(append(append([]byte(p.prefix), p.buf...), '\n'))
		p.buf = nil
	}
}
