package main

import (
	"github.com/spf13/cobra"
)

func init() { addCommand(newBuilderCmd) }

func newBuilderCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "builder",
		Short: "Manage the build cache",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	var f pruneFlags
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove unused build cache",
		Long: `builder prune removes the unused build cache (as 'docker builder prune' and
'buildah prune' do) and the image-save cache; the local store's images and blobs are left
alone ('sealos prune' also collects those). See 'sealos prune --help' for the flags.`,
		Example: `  sealos builder prune
  sealos builder prune --all --force
  sealos builder prune --keep-storage 10GB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runPrune(cmd, &f, false) },
	}
	f.register(prune)
	cmd.AddCommand(prune)
	return cmd
}
