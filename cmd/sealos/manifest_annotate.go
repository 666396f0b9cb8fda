package main

import (
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
)

func init() { addManifestCommand(newManifestAnnotateCmd) }

func newManifestAnnotateCmd() *cobra.Command {
	var (
		f     entryFlags
		index bool
	)
	cmd := &cobra.Command{
		Use:   "annotate LIST [IMAGE|DIGEST]",
		Short: "Set the platform or annotations of a manifest list's entry",
		Long: `annotate changes the entry of LIST for IMAGE (a name of the local store, or the entry's
digest): its --os, --arch, --variant, --os-version, --features, --os-features and
--annotation. With --index the annotations go on the list itself and IMAGE is left out.
The list's new digest goes to stdout.`,
		Example: `  sealos manifest annotate --arch arm64 --variant v8 app:v1 sha256:3f1c...
  sealos manifest annotate --annotation tier=edge app:v1 app:arm64
  sealos manifest annotate --index --annotation org.opencontainers.image.version=1.0 app:v1`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if index != (len(args) == 1) {
				return errors.New("give LIST and the IMAGE or DIGEST of its entry, or LIST alone with --index")
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			var want v1.Hash
			if !index {
				if want, err = entryDigest(cmd, st, args[1]); err != nil {
					return err
				}
			}
			desc, err := st.EditList(cmd.Context(), args[0], store.EditExisting, func(l *v1.IndexManifest) error {
				if index {
					if f.os != "" || f.arch != "" || f.variant != "" || f.osVersion != "" || len(f.features) > 0 || len(f.osFeatures) > 0 {
						return errors.New("--index takes only --annotation: a list has no platform")
					}
					d := v1.Descriptor{Annotations: l.Annotations}
					if err := f.apply(&d); err != nil {
						return err
					}
					l.Annotations = d.Annotations
					return nil
				}
				for i := range l.Manifests {
					if l.Manifests[i].Digest == want {
						return f.apply(&l.Manifests[i])
					}
				}
				return fmt.Errorf("manifest list %s has no entry %s", args[0], want)
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), desc.Digest)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&index, "index", false, "annotate the list itself rather than one of its entries")
	return cmd
}

// entryDigest is the manifest digest ref names: a digest as given, or an image of the
// local store.
func entryDigest(cmd *cobra.Command, st *store.Store, ref string) (v1.Hash, error) {
	if strings.HasPrefix(ref, "sha256:") && len(ref) == len("sha256:")+64 {
		return v1.NewHash(ref)
	}
	ds, err := st.ListEntry(cmd.Context(), ref, false, store.HostPlatform())
	if err != nil {
		return v1.Hash{}, err
	}
	return ds[0].Digest, nil
}
