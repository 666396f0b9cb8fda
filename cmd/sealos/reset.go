package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/apply"
)

func init() { addCommand(newResetCmd) }

func newResetCmd() *cobra.Command {
	var (
		cluster string
		force   bool
	)
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Undo a cluster on all its hosts and forget it",
		Long: `reset runs the rootfs clean scripts (clean on every host, clean-registry on registry
hosts; default 'bash <label>.sh' in scripts/, skipped when absent), stops the registry,
removes the /etc/hosts entry and everything shipped (/var/lib/sealos/data/<cluster> and
the registry data), then removes the cluster's state. Without --force the first failure
stops it and the state is kept; with --force it goes on and forgets the cluster anyway.

For a Kubernetes rootfs image, the image's clean script runs 'kubeadm reset' and removes
the kubelet, containers, mounts, the pod network (cni0, routes, KUBE-/CNI- iptables
chains) and the files it installed; reset also stops the nodes' API balancer.`,
		Example: `  sealos reset
  sealos reset --cluster prod --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			err := apply.Reset(cmd.Context(), apply.ResetOptions{Root: global.root, Name: cluster, Force: force, Out: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s reset\n", cluster)
			return nil
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "default", "name of the cluster")
	cmd.Flags().BoolVar(&force, "force", false, "go on past unreachable hosts and failing clean scripts")
	return cmd
}
