package apply

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/cluster-image/sealos/apply/transport"
	"github.com/cluster-image/sealos/apply/tree"
)

// shipSealos copies this binary (or Options.SealosBinary) to <data dir>/bin/sealos on
// hosts that do not have the same one already, so they can run the daemons of ours (the
// registry, the API balancer). It returns the remote path and the binary's sha256.
func (r *run) shipSealos(ctx context.Context, hosts []string, why string) (remote, sum string, err error) {
	bin := r.o.SealosBinary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return "", "", err
		}
	}
	if sum, err = tree.HashFile(bin); err != nil {
		return "", "", fmt.Errorf("the sealos binary %s: %w", why, err)
	}
	remote = path.Join(DataDir(r.name), "bin", "sealos")
	err = r.pool.ForEach(ctx, hosts, func(ctx context.Context, t transport.Transport) error {
		out, _ := transport.Output(ctx, t, "sha256sum "+transport.Quote(remote)+" 2>/dev/null | cut -c1-64")
		if strings.TrimSpace(string(out)) == sum {
			return nil
		}
		f, err := os.Open(bin)
		if err != nil {
			return err
		}
		defer f.Close()
		r.logf("%s: copying the sealos binary %s", t.Host(), why)
		return t.Copy(ctx, f, remote, 0o755)
	})
	return remote, sum, err
}

// startDaemon runs args in the background on t as daemon name, with <dir>/<name>.pid,
// .args and .log beside each other. A daemon that runs with the same args and binary (sum)
// is left alone; otherwise it is stopped and started again. It reports whether it started.
func startDaemon(ctx context.Context, t transport.Transport, dir, name, args, sum string) (bool, error) {
	script := fmt.Sprintf(`d=%[1]s; n=%[4]s; args=%[2]s; sum=%[3]s
mkdir -p "$d"
pid=$(cat "$d/$n.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "$d/$n.args" 2>/dev/null)" = "$args $sum" ]; then exit 0; fi
if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; fi
setsid nohup sh -c "exec $args" >"$d/$n.log" 2>&1 </dev/null &
echo $! >"$d/$n.pid"
echo "$args $sum" >"$d/$n.args"
echo started`, transport.Quote(dir), transport.Quote(args), sum, transport.Quote(name))
	out, err := transport.Output(ctx, t, script)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(out)) == "started", nil
}

// stopDaemonsScript stops every daemon startDaemon started under dir.
func stopDaemonsScript(dir string) string {
	return fmt.Sprintf(`for f in %s/*.pid; do
[ -f "$f" ] || continue
pid=$(cat "$f" 2>/dev/null || true)
if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; fi
done`, transport.Quote(dir))
}
