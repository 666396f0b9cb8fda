package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/registry/client"
)

func newLogoutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logout REGISTRY",
		Short: "Remove the stored credentials of a registry",
		Long: `logout removes the credentials that sealos login (or docker login) stored for REGISTRY
(host[:port]) from the docker config.json and its credential helper.`,
		Example: `  sealos logout registry.example.com
  sealos logout localhost:5000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := client.Logout(args[0], "")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed login credentials for %s\n", key)
			return nil
		},
	}
	return cmd
}

func init() { addCommand(newLogoutCmd) }
