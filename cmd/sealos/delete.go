package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/apply"
)

func init() { addCommand(newDeleteCmd) }

func newDeleteCmd() *cobra.Command {
	var (
		cluster        string
		force          bool
		masters, nodes []string
	)
	cmd := &cobra.Command{
		Use:   "delete --nodes IPS | --masters IPS",
		Short: "Remove hosts from a cluster",
		Long: `delete runs the clean scripts on the hosts, stops what the cluster started there, removes
what was shipped (/var/lib/sealos/data/<cluster>, the /etc/hosts entry) and records the
cluster without them. The last master cannot be deleted: use 'sealos reset'. --force goes
on when a host cannot be reached or a clean script fails.

In a Kubernetes cluster, each host's node is first drained and deleted through a master
that stays, and the other hosts drop their routes to its pods; the image's clean script
then runs 'kubeadm reset' on it (which also takes a master out of etcd).`,
		Example: `  sealos delete --nodes 192.168.0.5
  sealos delete --nodes 192.168.0.5,192.168.0.6 --cluster prod --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			hosts := append(splitIPs(masters), splitIPs(nodes)...)
			if len(hosts) == 0 {
				return errors.New("give the hosts to delete with --nodes or --masters")
			}
			err := apply.Delete(cmd.Context(), apply.ResetOptions{Root: global.root, Name: cluster, Force: force, Out: cmd.ErrOrStderr()}, hosts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %v from cluster %s\n", hosts, cluster)
			return nil
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "default", "name of the cluster")
	cmd.Flags().BoolVar(&force, "force", false, "go on past unreachable hosts and failing clean scripts")
	cmd.Flags().StringSliceVar(&masters, "masters", nil, "master IPs to delete")
	cmd.Flags().StringSliceVar(&nodes, "nodes", nil, "node IPs to delete")
	return cmd
}
