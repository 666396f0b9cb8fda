package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cluster-image/sealos/store"
)

func newLoadCmd() *cobra.Command {
	var (
		input  string
		output string
	)
	cmd := &cobra.Command{
		Use:   "load [-i FILE]",
		Short: "Load images from an archive into the local store",
		Long: `load reads an oci-archive or docker-archive (as written by sealos save, docker save,
podman save or skopeo; gzip-compressed or not) from FILE, or from stdin when FILE is "-"
or -i is not given, and stores its images under the names the archive gives them. Blobs
already in the store are not written again; every blob is checked against its digest.
An oci-archive keeps every digest; a docker-archive keeps image IDs.`,
		Example: `  sealos load -i kube.tar
  zcat apps.tar.gz | sealos load
  sealos load -i apps.tar --output json`,
		Annotations: batchGC,
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var r io.Reader = cmd.InOrStdin()
			if input == "" {
				if f, ok := r.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					return fmt.Errorf("load: stdin is a terminal; give the archive with -i FILE or pipe it in")
				}
			}
			if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return fmt.Errorf("load: %w", err)
				}
				defer f.Close()
				r = f
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			names, err := st.Load(cmd.Context(), r)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				if names == nil {
					names = []string{}
				}
				return json.NewEncoder(out).Encode(names)
			}
			for _, n := range names {
				fmt.Fprintf(out, "Loaded image: %s\n", store.DisplayName(n))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "archive to read (default: stdin)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format: text or json")
	return cmd
}

func init() { addCommand(newLoadCmd) }
