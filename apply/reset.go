package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/cluster-image/sealos/apply/clusterfile"
	"github.com/cluster-image/sealos/apply/transport"
	"github.com/cluster-image/sealos/imagespec"
)

// ResetOptions are the inputs of Reset and Delete.
type ResetOptions struct {
	Root string
	Name string
	// Force goes on past failures (unreachable hosts, failing clean scripts) and forgets
	// the cluster anyway.
	Force bool
	Out   io.Writer
	Pool  *transport.Pool // default: SSH per the recorded Clusterfile
}

// Reset undoes a cluster on every host: runs the clean scripts (clean everywhere,
// clean-registry on registry hosts), stops the registry, removes the /etc/hosts entry and
// everything shipped (/var/lib/sealos/data/<name>, the registry data), then forgets the
// cluster's state. Without Force, the first failure stops it and the state is kept.
func Reset(ctx context.Context, o ResetOptions) error {
	c, err := LoadState(o.Root, o.Name)
	if err != nil {
		return err
	}
	unlock, err := lockCluster(o.Root, o.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := cleanHosts(ctx, o, c, c.IPs()); err != nil && !o.Force {
		return err
	}
	return os.RemoveAll(ClusterDir(o.Root, o.Name))
}

// Delete removes hosts from the cluster: cleans them as Reset does and records the
// cluster without them.
func Delete(ctx context.Context, o ResetOptions, hosts []string) error {
	c, err := LoadState(o.Root, o.Name)
	if err != nil {
		return err
	}
	unlock, err := lockCluster(o.Root, o.Name)
	if err != nil {
		return err
	}
	defer unlock()
	for _, h := range hosts {
		if _, ok := c.HostOf(h); !ok {
			return fmt.Errorf("host %s is not in cluster %q", h, o.Name)
		}
	}
	left := *c
	left.Spec.Hosts = append([]clusterfile.Host(nil), c.Spec.Hosts...)
	left.RemoveHosts(hosts...)
	if len(left.Masters()) == 0 {
		return fmt.Errorf("deleting %v would leave cluster %q without a master: use 'sealos reset'", hosts, o.Name)
	}
	if o.Pool == nil {
		o.Pool = NewPool(o.Root, c)
		defer o.Pool.Close()
	}
	if c.Status.Kubernetes != "" {
		if err := removeNodes(ctx, o, left.Masters()[0], left.IPs(), hosts); err != nil && !o.Force {
			return err
		}
	}
	if err := cleanHosts(ctx, o, c, hosts); err != nil && !o.Force {
		return err
	}
	st := &state{path: StatePath(o.Root, o.Name), c: &left}
	st.forgetHosts(left.IPs())
	return st.update(func(c *clusterfile.Cluster) {
		var hs []clusterfile.HostStatus
		for _, h := range c.Status.Hosts {
			if !slicesContains(hosts, h.IP) {
				hs = append(hs, h)
			}
		}
		c.Status.Hosts = hs
	})
}

func cleanHosts(ctx context.Context, o ResetOptions, c *clusterfile.Cluster, hosts []string) error {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	sw := &syncWriter{w: out}
	pool := o.Pool
	if pool == nil {
		pool = NewPool(o.Root, c)
		defer pool.Close()
	}
	dd := DataDir(o.Name)
	rootfs := path.Join(dd, "rootfs")
	registryHosts := c.RegistryHosts()
	data := c.Status.RegistryData
	return pool.ForEach(ctx, hosts, func(ctx context.Context, t transport.Transport) error {
		h := t.Host()
		labels := []string{imagespec.LabelClean}
		isRegistry := slicesContains(registryHosts, h)
		if isRegistry {
			labels = append(labels, imagespec.LabelCleanRegistry)
		}
		var errs []error
		for _, l := range labels {
			cmd, isDefault := imagespec.ScriptCommand(c.Status.Scripts, l)
			script := fmt.Sprintf("cd %s 2>/dev/null || exit 0; ", transport.Quote(path.Join(rootfs, imagespec.DirScripts)))
			if isDefault {
				script += fmt.Sprintf("[ -f %s.sh ] || exit 0; ", l)
			}
			fmt.Fprintf(sw, "%s: script %s\n", h, l)
			w := newPrefixWriter(sw, h+": ")
			err := t.Run(ctx, script+cmd, transport.RunOptions{Stdout: w, Stderr: w})
			w.Flush()
			if err != nil {
				errs = append(errs, err)
				if !o.Force {
					return errors.Join(errs...)
				}
			}
		}
		rm := fmt.Sprintf("%s\nrm -rf %s\nrmdir %s 2>/dev/null || true\n%s\n%s", stopDaemonsScript(dd), transport.Quote(dd), transport.Quote(path.Dir(dd)),
			setHostsLine(hostsMarker(o.Name), ""), setHostsLine(apiserverMarker(o.Name), ""))
		if isRegistry && data != "" {
			// The data directory may be a mount point of its own: emptied, then removed
			// where it can be.
			rm += fmt.Sprintf("; if [ -d %[1]s ]; then find %[1]s -mindepth 1 -delete; rmdir %[1]s 2>/dev/null || true; fi", transport.Quote(data))
		}
		if err := t.Run(ctx, rm, transport.RunOptions{}); err != nil {
			errs = append(errs, err)
		}
		fmt.Fprintf(sw, "%s: removed %s\n", h, dd)
		return errors.Join(errs...)
	})
}
