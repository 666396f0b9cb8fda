package main

import "github.com/spf13/cobra"

func init() { addCommand(newUmountCmd) }

func newUmountCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "umount CONTAINER...",
		Short: "Remove working containers made by create (as rm)",
		Long: `umount removes each CONTAINER made by 'sealos create', as 'sealos rm' does: the
containers are directories, not mounts, so there is nothing to unmount and keep.`,
		Example: `  sealos umount kube-working-container
  sealos umount --all`,
		RunE: func(cmd *cobra.Command, args []string) error { return removeContainers(cmd, args, all) },
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every working container")
	return cmd
}
