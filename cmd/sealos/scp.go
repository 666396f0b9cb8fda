package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/apply"
)

func init() { addCommand(newScpCmd) }

func newScpCmd() *cobra.Command {
	var (
		cluster    string
		roles, ips []string
		timeout    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "scp SRC DST",
		Short: "Copy a local file or directory to the hosts of a cluster",
		Long: `scp copies the local file or directory SRC to the absolute path DST on the hosts of a
cluster in parallel (every host, or those selected by --roles and --ips). A file is
written to a temporary name and renamed, so DST is complete or untouched; a directory's
content is extracted into DST.`,
		Example: `  sealos scp ./kubeconfig /root/.kube/config --roles master
  sealos scp ./manifests /opt/manifests --ips 192.168.0.3`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := apply.Scp(cmd.Context(), apply.HostsOptions{
				Root: global.root, Name: cluster, Roles: splitIPs(roles), IPs: splitIPs(ips),
				Out: cmd.ErrOrStderr(), Timeout: timeout,
			}, args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "copied %s to %s\n", args[0], args[1])
			return nil
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "default", "name of the cluster")
	cmd.Flags().StringSliceVarP(&roles, "roles", "r", nil, "only hosts with any of these roles (comma separated)")
	cmd.Flags().StringSliceVar(&ips, "ips", nil, "only these hosts (comma separated)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "time limit of the copy")
	return cmd
}
