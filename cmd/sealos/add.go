package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/apply"
	"github.com/cluster-image/sealos/apply/clusterfile"
)

func init() { addCommand(newAddCmd) }

func newAddCmd() *cobra.Command {
	var (
		f              clusterFlags
		masters, nodes []string
	)
	cmd := &cobra.Command{
		Use:   "add --masters IPS | --nodes IPS",
		Short: "Add hosts to a cluster and run its images on them",
		Long: `add records new hosts in the cluster and applies the cluster's images: the new hosts get
the rootfs, the registry entry and run the rootfs scripts and commands; the hosts already
there are left as they are (nothing sent, nothing run again). The SSH settings are the
cluster's (spec.ssh).

In a Kubernetes cluster the new hosts are checked first (architecture, swap, free ports),
then join: masters one at a time as control-plane members, nodes --parallel at once; the
pod network routes of every host are brought up to date and the run waits until every node
is Ready. A failed add is finished by running the same add again.`,
		Example: `  sealos add --nodes 192.168.0.5,192.168.0.6
  sealos add --masters 192.168.0.7 --cluster prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(masters) == 0 && len(nodes) == 0 {
				return errors.New("give the hosts to add with --masters or --nodes")
			}
			c, err := apply.LoadState(global.root, f.cluster)
			if err != nil {
				return err
			}
			if m := splitIPs(masters); len(m) > 0 {
				c.AddHosts([]string{clusterfile.RoleMaster}, m...)
			}
			if n := splitIPs(nodes); len(n) > 0 {
				c.AddHosts([]string{clusterfile.RoleNode}, n...)
			}
			return applyCluster(cmd, c, &f)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringSliceVar(&masters, "masters", nil, "master IPs to add (comma separated)")
	cmd.Flags().StringSliceVar(&nodes, "nodes", nil, "node IPs to add (comma separated)")
	return cmd
}
