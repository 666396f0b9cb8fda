package main

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
)

func init() { addManifestCommand(newManifestCreateCmd) }

func newManifestCreateCmd() *cobra.Command {
	var (
		all, amend bool
		output     string
		tls        bool
	)
	cmd := &cobra.Command{
		Use:   "create LIST [IMAGE...]",
		Short: "Create a manifest list, optionally with images in it",
		Long: `create makes an empty manifest list named LIST in the local store and adds each IMAGE to
it as 'sealos manifest add' does. An IMAGE that is itself a list or a multi-platform image
adds its image for this machine's platform, or all of them with --all. A name already taken
is an error unless --amend, which adds to the existing list. The list's digest goes to
stdout.`,
		Example: `  sealos manifest create app:v1
  sealos manifest create app:v1 app:amd64 app:arm64
  sealos manifest create --all mirror/pause:3.9 registry.k8s.io/pause:3.9`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			var entries []v1.Descriptor
			for _, img := range args[1:] {
				ds, err := listEntries(cmd, st, img, all, store.HostPlatform(), registryOptions(tls)...)
				if err != nil {
					return err
				}
				entries = append(entries, ds...)
			}
			mode := store.CreateList
			if amend {
				mode = store.CreateOrEdit
			}
			desc, err := st.EditList(cmd.Context(), args[0], mode, func(l *v1.IndexManifest) error {
				for _, d := range entries {
					store.PutListEntry(l, d)
				}
				return nil
			})
			if err != nil {
				return err
			}
			return printListResult(cmd, output, args[0], desc, entries)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "add every image of a multi-platform IMAGE, not just this machine's")
	cmd.Flags().BoolVarP(&amend, "amend", "a", false, "if LIST exists, add to it instead of failing")
	cmd.Flags().BoolVar(&tls, "tls-verify", true, "require HTTPS with a verified certificate when an IMAGE is pulled")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format: text or json")
	return cmd
}

// listResult is what the manifest commands print with --output json.
type listResult struct {
	List   string   `json:"list"`
	Digest string   `json:"digest"`
	Added  []string `json:"added,omitempty"`
}

func printListResult(cmd *cobra.Command, output, list string, desc v1.Descriptor, added []v1.Descriptor) error {
	res := listResult{List: store.DisplayName(list), Digest: desc.Digest.String()}
	for _, d := range added {
		res.Added = append(res.Added, d.Digest.String())
	}
	if output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintln(cmd.OutOrStdout(), res.Digest)
	return nil
}
