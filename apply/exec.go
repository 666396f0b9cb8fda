package apply

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/cluster-image/sealos/apply/clusterfile"
	"github.com/cluster-image/sealos/apply/transport"
	"github.com/cluster-image/sealos/apply/tree"
)

// HostsOptions select hosts of a recorded cluster and say how to talk to them.
type HostsOptions struct {
	Root    string
	Name    string
	Roles   []string // hosts with any of these roles
	IPs     []string // and these hosts; every host when both are empty
	Out     io.Writer
	Timeout time.Duration
	Pool    *transport.Pool
}

// SelectHosts returns the hosts of c that o selects, in Clusterfile order.
func SelectHosts(c *clusterfile.Cluster, roles, ips []string) ([]string, error) {
	for _, ip := range ips {
		if _, ok := c.HostOf(ip); !ok {
			return nil, fmt.Errorf("host %s is not in cluster %q", ip, c.Metadata.Name)
		}
	}
	if len(roles) == 0 && len(ips) == 0 {
		return c.IPs(), nil
	}
	var out []string
	for _, h := range c.IPs() {
		sel := slicesContains(ips, h)
		for _, r := range roles {
			if slicesContains(c.WithRole(r), h) {
				sel = true
			}
		}
		if sel {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no host of cluster %q has the roles %v", c.Metadata.Name, roles)
	}
	return out, nil
}

func (o HostsOptions) open() (*clusterfile.Cluster, []string, *transport.Pool, func(), error) {
	c, err := LoadState(o.Root, o.Name)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	hosts, err := SelectHosts(c, o.Roles, o.IPs)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	pool, done := o.Pool, func() {}
	if pool == nil {
		pool = NewPool(o.Root, c)
		done = func() { pool.Close() }
	}
	return c, hosts, pool, done, nil
}

// Exec runs cmd on the selected hosts in parallel, each output line prefixed with its
// host. Every host runs; the error names each host that failed.
func Exec(ctx context.Context, o HostsOptions, cmd string) error {
	_, hosts, pool, done, err := o.open()
	if err != nil {
		return err
	}
	defer done()
	out := &syncWriter{w: orDiscard(o.Out)}
	return pool.ForEach(ctx, hosts, func(ctx context.Context, t transport.Transport) error {
		w := newPrefixWriter(out, t.Host()+": ")
		defer w.Flush()
		return t.Run(ctx, cmd, transport.RunOptions{Stdout: w, Stderr: w, Timeout: o.Timeout})
	})
}

// Scp copies the local file or directory src to dst on the selected hosts. A file lands
// at dst atomically; a directory's content is extracted into dst (created if missing).
func Scp(ctx context.Context, o HostsOptions, src, dst string) error {
	if !path.IsAbs(dst) {
		return fmt.Errorf("scp: destination %q must be an absolute path", dst)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	_, hosts, pool, done, err := o.open()
	if err != nil {
		return err
	}
	defer done()
	return pool.ForEach(ctx, hosts, func(ctx context.Context, t transport.Transport) error {
		if !fi.IsDir() {
			f, err := os.Open(src)
			if err != nil {
				return err
			}
			defer f.Close()
			return t.Copy(ctx, f, dst, fi.Mode())
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tree.Tar(pw, src)) }()
		err := t.Run(ctx, fmt.Sprintf("mkdir -p %[1]s && tar -x --no-same-owner -C %[1]s -f -", transport.Quote(dst)), transport.RunOptions{Stdin: pr, Timeout: o.Timeout})
		pr.CloseWithError(err)
		return err
	})
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
