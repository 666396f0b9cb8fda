package main

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/apply"
)

func init() { addCommand(newExecCmd) }

func newExecCmd() *cobra.Command {
	var (
		cluster    string
		roles, ips []string
		timeout    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "exec [--roles ROLES] [--ips IPS] COMMAND...",
		Short: "Run a shell command on the hosts of a cluster",
		Long: `exec runs COMMAND (its arguments joined by spaces, run by the login shell with -c) on the
hosts of a cluster in parallel: every host, or those with any of --roles and those in
--ips. Each output line is prefixed with its host; the exit status is non-zero when any
host failed, and the error names each one.`,
		Example: `  sealos exec 'cat /etc/hosts'
  sealos exec --roles master -- kubectl get nodes
  sealos exec --ips 192.168.0.3 --cluster prod uptime`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return apply.Exec(cmd.Context(), apply.HostsOptions{
				Root: global.root, Name: cluster, Roles: splitIPs(roles), IPs: splitIPs(ips),
				Out: cmd.OutOrStdout(), Timeout: timeout,
			}, strings.Join(args, " "))
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "default", "name of the cluster")
	cmd.Flags().StringSliceVarP(&roles, "roles", "r", nil, "only hosts with any of these roles (comma separated)")
	cmd.Flags().StringSliceVar(&ips, "ips", nil, "only these hosts (comma separated)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "time limit of the command")
	return cmd
}
