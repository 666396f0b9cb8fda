package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/store"
)

func init() { addManifestCommand(newManifestInspectCmd) }

func newManifestInspectCmd() *cobra.Command {
	var tls bool
	cmd := &cobra.Command{
		Use:   "inspect LIST",
		Short: "Print a manifest list as JSON",
		Long: `inspect prints the OCI image index of LIST, indented. LIST is looked up in the local
store first; a name the store does not hold is read from its registry (credentials from
'sealos login'), so a pushed list can be checked too.`,
		Example: `  sealos manifest inspect app:v1
  sealos manifest inspect registry.example.com/team/app:v1 | jq '.manifests[].platform'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			raw, err := st.RawManifest(cmd.Context(), args[0])
			if errors.Is(err, store.ErrNotFound) {
				d, rerr := client.Get(cmd.Context(), args[0], registryOptions(tls)...)
				if rerr != nil {
					return fmt.Errorf("%s is not in the local store, and its registry says: %w", args[0], rerr)
				}
				raw, err = d.Manifest, nil
			}
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if err := json.Indent(&out, raw, "", "    "); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out.WriteByte('\n')
			_, err = cmd.OutOrStdout().Write(out.Bytes())
			return err
		},
	}
	cmd.Flags().BoolVar(&tls, "tls-verify", true, "require HTTPS with a verified certificate when LIST is read from its registry")
	return cmd
}
