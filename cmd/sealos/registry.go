package main

import (
	"github.com/spf13/cobra"
)

func init() { addCommand(newRegistryCmd) }

// registrySubcommands is filled by the init of each file that adds a `sealos registry`
// subcommand, so each subcommand lives in its own file.
var registrySubcommands []func() *cobra.Command

// addRegistryCommand registers a subcommand of `sealos registry`. Call it from init().
func addRegistryCommand(f func() *cobra.Command) {
	registrySubcommands = append(registrySubcommands, f)
}

func newRegistryCmd() *cobra.Command {
	registryCmd := &cobra.Command{
		Use:   "registry",
		Short: "Run and maintain an OCI registry (the hub)",
		Long: `registry runs the hub, an OCI distribution 1.1 registry that stores images on disk,
and maintains it: garbage collection and htpasswd users.`,
		Example: `  sealos registry serve filesystem /var/lib/registry
  sealos registry gc /var/lib/registry --dry-run
  sealos registry passwd --htpasswd /etc/registry/htpasswd admin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	for _, f := range registrySubcommands {
		registryCmd.AddCommand(f())
	}
	return registryCmd
}
