package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
)

func init() { addManifestCommand(newManifestRmCmd) }

func newManifestRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm LIST...",
		Short: "Remove manifest lists from the local store",
		Long: `rm removes each manifest list named, not the images it lists (they stay while they have
names of their own). A name that is an image, not a list, is refused: use 'sealos rmi'.
It goes on after a failure and exits non-zero if any list could not be removed.`,
		Example: `  sealos manifest rm app:v1
  sealos manifest rm app:v1 app:v2`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			var errs []error
			for _, l := range args {
				ok, err := st.IsList(cmd.Context(), l)
				switch {
				case err != nil:
					errs = append(errs, err)
					continue
				case !ok:
					if _, rerr := st.Resolve(cmd.Context(), l); rerr != nil {
						errs = append(errs, fmt.Errorf("manifest list %s: %w", l, rerr))
					} else {
						errs = append(errs, fmt.Errorf("%s %w: use 'sealos rmi'", l, store.ErrNotList))
					}
					continue
				}
				if err := st.Remove(cmd.Context(), l); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), "untagged:", store.DisplayName(mustNormalize(l)))
			}
			return errors.Join(errs...)
		},
	}
}

// mustNormalize is ref normalized, or ref itself when it does not parse.
func mustNormalize(ref string) string {
	if n, err := store.NormalizeRef(ref); err == nil {
		return n
	}
	return ref
}
