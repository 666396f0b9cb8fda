package kube

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// CNIFile is where the pod network's CNI configuration goes on every host.
const CNIFile = "/etc/cni/net.d/10-sealos.conflist"

// RouteProto marks the routes the engine adds between nodes' pod ranges, so they can be
// replaced and removed without touching anyone else's.
const RouteProto = 233

// CNIConfig is the pod network of one node: a bridge (cni0) with addresses from the node's
// pod range, masquerading traffic that leaves the pod network, and host ports.
func CNIConfig(podCIDR string) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "sealos",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": podCIDR}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	return append(b, '\n'), err
}

// Route sends a node's pod range to that node.
type Route struct {
	CIDR string
	Via  string
}

// Routes are the routes host needs: every other node's pod range through that node.
func Routes(nodes []Node, host string) []Route {
	var out []Route
	for _, n := range nodes {
		if n.IP != host && n.PodCIDR != "" && n.IP != "" {
			out = append(out, Route{CIDR: n.PodCIDR, Via: n.IP})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CIDR < out[j].CIDR })
	return out
}

// NetworkScript writes the CNI configuration (only when it differs, so the runtime does
// not see a change) and makes the host's pod routes exactly routes: missing ones are added,
// ours that are no longer wanted are removed.
func NetworkScript(cni []byte, routes []Route) string {
	var b strings.Builder
	fmt.Fprintf(&b, "set -e\nmkdir -p %s\n", dirOf(CNIFile))
	fmt.Fprintf(&b, "t=$(mktemp)\ncat >\"$t\" <<'SEALOS_CNI'\n%sSEALOS_CNI\n", cni)
	fmt.Fprintf(&b, "if cmp -s \"$t\" %[1]s; then rm -f \"$t\"; else mv \"$t\" %[1]s; fi\n", CNIFile)
	want := make([]string, 0, len(routes))
	for _, r := range routes {
		fmt.Fprintf(&b, "ip route replace %s via %s proto %d\n", r.CIDR, r.Via, RouteProto)
		want = append(want, r.CIDR)
	}
	fmt.Fprintf(&b, "for r in $(ip route show proto %d | cut -d' ' -f1); do\n  case \" %s \" in *\" $r \"*) ;; *) ip route del \"$r\" proto %d ;; esac\ndone\n",
		RouteProto, strings.Join(want, " "), RouteProto)
	return b.String()
}

func dirOf(p string) string { return p[:strings.LastIndexByte(p, '/')] }
