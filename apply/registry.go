package apply

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/cluster-image/sealos/apply/clusterfile"
	"github.com/cluster-image/sealos/apply/plan"
	"github.com/cluster-image/sealos/apply/transport"
	"github.com/cluster-image/sealos/apply/tree"
	"github.com/cluster-image/sealos/imagespec"
)

// hasRegistry reports whether t carries registry data (files under registry/).
func hasRegistry(t *tree.Tree) bool {
	if t == nil {
		return false
	}
	for _, e := range t.Manifest().Entries {
		if e.Type == tree.TypeFile && strings.HasPrefix(e.Path, imagespec.DirRegistry+"/") {
			return true
		}
	}
	return false
}

// hostsMarker ends the /etc/hosts line the cluster owns.
func hostsMarker(cluster string) string { return "# sealos:" + cluster }

// registry serves the images' registry/ data on the registry hosts with this same binary
// ("sealos registry serve filesystem"), points <registryDomain> at the first registry
// host in every host's /etc/hosts, and waits until the registry answers. The data of the
// rootfs and of the application images is merged (hard links) into <registryData>.
func (r *run) registry(ctx context.Context) error {
	p := r.plan
	master := p.Masters[0]
	var sources []string
	if hasRegistry(p.Rootfs[p.Registry[0]]) {
		sources = append(sources, path.Join(r.rootfsDir(), imagespec.DirRegistry))
	}
	for _, a := range p.Apps {
		if hasRegistry(a.Tree) && slicesContains(p.Registry, master) {
			sources = append(sources, path.Join(DataDir(r.name), "applications", a.Name, imagespec.DirRegistry))
		}
	}
	if len(sources) == 0 {
		return nil
	}
	domain := p.Env[imagespec.EnvRegistryDomain]
	port := p.Env[imagespec.EnvRegistryPort]
	data := p.Env[imagespec.EnvRegistryData]
	if domain == "" || port == "" || data == "" {
		return &StepError{Step: "registry", Err: fmt.Errorf("the env needs %s, %s and %s", imagespec.EnvRegistryDomain, imagespec.EnvRegistryPort, imagespec.EnvRegistryData)}
	}
	_ = r.st.update(func(c *clusterfile.Cluster) { c.Status.RegistryData = data })
	dd := DataDir(r.name)
	remoteBin, binSum, err := r.shipSealos(ctx, p.Registry, "to serve the registry")
	if err != nil {
		return &StepError{Step: "registry binary", Err: err}
	}

	// The data, then the server (restarted only when its inputs changed or it died).
	var dataKey []string
	dataKey = append(dataKey, sources...)
	if t := p.Rootfs[p.Registry[0]]; t != nil {
		dataKey = append(dataKey, t.Digest())
	}
	for _, a := range p.Apps {
		dataKey = append(dataKey, a.Image.Digest)
	}
	err = r.runStep(ctx, "registry data", p.Registry, func(string) string { return plan.Fingerprint(dataKey, data) },
		func(string) (string, map[string]string, bool) {
			var b strings.Builder
			fmt.Fprintf(&b, "set -e; mkdir -p %s; ", transport.Quote(data))
			for _, s := range sources {
				// Hard links, or a copy where registryData is another mount (EXDEV, even
				// for two bind mounts of one file system).
				fmt.Fprintf(&b, "if [ -d %[1]s ]; then cp -al --remove-destination %[1]s/. %[2]s/ 2>/dev/null || cp -a --remove-destination %[1]s/. %[2]s/; fi; ", transport.Quote(s), transport.Quote(data))
			}
			return b.String(), nil, true
		})
	if err != nil {
		return err
	}
	err = r.pool.ForEach(ctx, p.Registry, func(ctx context.Context, t transport.Transport) error {
		ip, _ := clusterfile.SplitIP(t.Host())
		args := fmt.Sprintf("%s registry serve filesystem %s -p %s --address %s --access-log", transport.Quote(remoteBin), transport.Quote(data), transport.Quote(port), transport.Quote(ip))
		started, err := startDaemon(ctx, t, dd, "registry", args, binSum)
		if err != nil {
			return err
		}
		if started {
			r.logf("%s: registry serving %s on port %s", t.Host(), data, port)
		}
		return r.waitRegistry(ctx, t, ip, port, path.Join(dd, "registry.log"))
	})
	if err != nil {
		return &StepError{Step: "registry serve", Err: err}
	}

	// <registryDomain> on every host.
	regIP, _ := clusterfile.SplitIP(p.Registry[0])
	marker := hostsMarker(r.name)
	line := fmt.Sprintf("%s\t%s %s", regIP, domain, marker)
	err = r.runStep(ctx, "registry hosts entry", p.Hosts, func(string) string { return plan.Fingerprint(line) },
		func(string) (string, map[string]string, bool) { return setHostsLine(marker, line), nil, true })
	if err != nil {
		return err
	}
	return nil
}

// setHostsLine replaces the line ending with marker in /etc/hosts (or removes it when
// line is empty), writing the file in place: /etc/hosts is often a bind mount.
func setHostsLine(marker, line string) string {
	add := ""
	if line != "" {
		add = fmt.Sprintf("printf '%%s\\n' %s >>\"$t\"; ", transport.Quote(line))
	}
	return fmt.Sprintf(`set -e; t=$(mktemp); grep -v -F -e %s /etc/hosts >"$t" || true; %scat "$t" >/etc/hosts; rm -f "$t"`,
		transport.Quote(marker), add)
}

func (r *run) waitRegistry(ctx context.Context, t transport.Transport, ip, port, logFile string) error {
	url := fmt.Sprintf("http://%s/v2/", hostPort(ip, port))
	script := fmt.Sprintf(`for i in $(seq 1 300); do
if command -v curl >/dev/null 2>&1; then curl -s -o /dev/null %[1]s && exit 0
elif command -v wget >/dev/null 2>&1; then wget -q -O /dev/null %[1]s && exit 0
else (exec 3<>/dev/tcp/%[2]s/%[3]s) 2>/dev/null && exit 0; fi
sleep 0.1; done
echo "the registry did not answer at %[1]s within 30s; its log:" >&2; tail -20 %[4]s >&2; exit 1`,
		transport.Quote(url), ip, port, transport.Quote(logFile))
	return t.Run(ctx, "bash -c "+transport.Quote(script), transport.RunOptions{Timeout: r.o.Timeout})
}

func hostPort(ip, port string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + port
	}
	return ip + ":" + port
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
