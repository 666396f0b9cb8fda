package main

import (
	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/apply/clusterfile"
)

func init() { addCommand(newApplyCmd) }

func newApplyCmd() *cobra.Command {
	var (
		f    clusterFlags
		file string
	)
	cmd := &cobra.Command{
		Use:   "apply -f Clusterfile",
		Short: "Make a cluster look like a Clusterfile says",
		Long: `apply reads a Clusterfile (apiVersion apps.sealos.io/v1beta1, kind Cluster: spec.hosts
with ips, roles and env, spec.ssh, spec.image, spec.env, spec.command) and applies it the
way 'sealos run' does: only what differs is shipped and only what changed runs again.
spec.command, when set, replaces the CMD of the last image. The cluster's name is
metadata.name, or --cluster when the file names none (default "default").`,
		Example: `  sealos apply -f Clusterfile
  sealos apply -f Clusterfile -e registryPort=5001 --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clusterfile.Load(file)
			if err != nil {
				return err
			}
			if c.Metadata.Name == "" {
				c.Metadata.Name = f.cluster
			}
			return applyCluster(cmd, c, &f)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVarP(&file, "file", "f", "Clusterfile", "the Clusterfile")
	return cmd
}
