package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
)

func init() { addManifestCommand(newManifestExistsCmd) }

func newManifestExistsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "exists LIST",
		Short: "Exit 0 if a manifest list of that name is in the local store, 1 if not",
		Long: `exists tells scripts whether LIST names a manifest list in the local store: exit status 0
if it does, 1 if it does not (nothing printed), and 125 with a message when the store cannot
be read.`,
		Example: `  sealos manifest exists app:v1 || sealos manifest create app:v1`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := store.Open(global.root)
			ok := false
			if err == nil {
				ok, err = st.IsList(cmd.Context(), args[0])
			}
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "Error:", err)
				return &exitError{code: 125}
			}
			if !ok {
				return &exitError{code: 1}
			}
			return nil
		},
	}
}
