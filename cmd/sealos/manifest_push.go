package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
)

func init() { addManifestCommand(newManifestPushCmd) }

func newManifestPushCmd() *cobra.Command {
	var (
		f          transferFlags
		all, rm    bool
		format     string
		digestFile string
	)
	cmd := &cobra.Command{
		Use:   "push LIST [DESTINATION]",
		Short: "Push a manifest list and its images to a registry",
		Long: `push uploads the manifest list LIST of the local store, with every image it names, to
DESTINATION (default: LIST's own name), as 'sealos push' does for any image: blobs the
registry has are skipped, the rest sent in parallel. The digest pushed goes to stdout and,
with --digestfile, to that file; --rm removes the list from the store after a successful
push (its images stay).`,
		Example: `  sealos manifest push --all app:v1 registry.example.com/team/app:v1
  sealos manifest push --rm --digestfile app.digest localhost:5000/app:v1`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !all {
				return errors.New("--all=false would push the list without its images, which a registry refuses for images it lacks: push each image first, or keep --all")
			}
			if format != "" && format != "oci" {
				return fmt.Errorf("--format %s: lists are pushed as OCI image indexes as stored (converting would change every digest); use --format oci", format)
			}
			src, dst := args[0], args[0]
			if len(args) == 2 {
				dst = args[1]
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			if ok, err := st.IsList(cmd.Context(), src); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("%s is not a manifest list in the local store (push an image with 'sealos push')", src)
			}
			var removeList func() error
			if rm {
				removeList = func() error { return st.Remove(cmd.Context(), src) }
			}
			return f.push(cmd, st, src, dst, digestFile, removeList)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&all, "all", true, "push the images the list names too (the only mode: a list needs its images in the registry)")
	cmd.Flags().BoolVar(&rm, "rm", false, "remove the list from the local store once pushed")
	cmd.Flags().StringVarP(&format, "format", "f", "", "manifest format: oci (lists are stored and pushed as OCI indexes)")
	cmd.Flags().StringVar(&digestFile, "digestfile", "", "write the pushed digest to this file")
	return cmd
}
