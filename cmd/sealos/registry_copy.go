package main

import (
	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/registry/client"
)

func init() { addRegistryCommand(newRegistryCopyCmd) }

func newRegistryCopyCmd() *cobra.Command {
	var f syncFlags
	cmd := &cobra.Command{
		Use:   "copy IMAGE DESTINATION",
		Short: "Copy one image, with its referrers, from a registry to another",
		Long: `copy copies IMAGE (repository:tag or repository@digest) to DESTINATION, registry to
registry, without the local store. DESTINATION is a full reference, or a repository that
takes IMAGE's tag (or only its digest). Manifests travel as raw bytes, so the digest is
unchanged; referrers (signatures, SBOMs) come along. A destination that already holds the
digest costs one HEAD; blobs it has are not sent again.`,
		Example: `  sealos registry copy registry.example.com/library/nginx:1.27 sealos.hub:5000/library/nginx
  sealos registry copy --all src:5000/team/app@sha256:4f0c... dst:5000/team/app:v1
  sealos registry copy -o json --platform linux/arm64 src:5000/base:v1 dst:5000/base:v1`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, so, p, err := f.options(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			rep, err := client.Copy(cmd.Context(), args[0], args[1], so, opts...)
			p.CloseWith(err)
			if err != nil {
				return err
			}
			return f.printReport(cmd, rep)
		},
	}
	f.register(cmd)
	return cmd
}
