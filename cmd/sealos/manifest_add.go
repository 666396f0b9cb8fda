package main

import (
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
)

func init() { addManifestCommand(newManifestAddCmd) }

func newManifestAddCmd() *cobra.Command {
	var (
		f      entryFlags
		all    bool
		output string
		tls    bool
	)
	cmd := &cobra.Command{
		Use:   "add LIST IMAGE",
		Short: "Add an image to a manifest list",
		Long: `add puts IMAGE into the manifest list LIST, recording the platform its config declares
(or the one --os/--arch/--variant give). IMAGE comes from the local store, or is pulled into
it when the store lacks it. A multi-platform IMAGE adds its image for this machine (or for
--os/--arch), or all of them with --all. Adding an image the list has already replaces its
entry. The digest of the image added goes to stdout.`,
		Example: `  sealos manifest add app:v1 app:arm64
  sealos manifest add --arch arm64 --variant v8 app:v1 app:arm64
  sealos manifest add --all app:v1 docker.io/library/busybox:1.36
  sealos manifest add --annotation org.opencontainers.image.source=https://git.example.com/app app:v1 app:amd64`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			// Refuse a missing list before pulling anything for it.
			if ok, err := st.IsList(cmd.Context(), args[0]); err != nil {
				return err
			} else if !ok {
				if _, rerr := st.Resolve(cmd.Context(), args[0]); errors.Is(rerr, store.ErrNotFound) {
					return fmt.Errorf("manifest list %s: %w (create it with 'sealos manifest create %s')", args[0], store.ErrNotFound, args[0])
				}
				return fmt.Errorf("%s %w", args[0], store.ErrNotList)
			}
			entries, err := listEntries(cmd, st, args[1], all, f.listPlatform(), registryOptions(tls)...)
			if err != nil {
				return err
			}
			if len(entries) > 1 && (f.os != "" || f.arch != "" || f.variant != "" || f.osVersion != "") {
				return errors.New("--os/--arch/--variant/--os-version name one image's platform: leave them out with --all")
			}
			for i := range entries {
				if err := f.apply(&entries[i]); err != nil {
					return err
				}
			}
			desc, err := st.EditList(cmd.Context(), args[0], store.EditExisting, func(l *v1.IndexManifest) error {
				for _, d := range entries {
					store.PutListEntry(l, d)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if output == "json" {
				return printListResult(cmd, output, args[0], desc, entries)
			}
			for _, d := range entries {
				fmt.Fprintln(cmd.OutOrStdout(), d.Digest)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "add every image of a multi-platform IMAGE")
	cmd.Flags().BoolVar(&tls, "tls-verify", true, "require HTTPS with a verified certificate when IMAGE is pulled")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format: text or json")
	return cmd
}
