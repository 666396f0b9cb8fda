package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/builder/detect"
)

func init() { addRegistryCommand(newRegistryImagesCmd) }

func newRegistryImagesCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "images CONTEXT",
		Short: "List the container images a build context needs, and why",
		Long: `images finds every container image the build context CONTEXT needs, as 'sealos build'
and 'sealos registry save' do: charts under charts/ rendered with the Helm SDK (values.yaml,
an optional charts/<name>.values.yaml beside the chart, subcharts whose conditions hold, and
the helm.sh/images annotation; release "dryrun" in no namespace, as sealos renders them), the
containers of Kubernetes workloads and any 'image' field of other objects under manifests/
(*.yaml, *.yml, *.json and *.tmpl; a file a YAML parser refuses is read line by line, with a
warning), the lists under images/shim/ (one image per line, # comments), and the image
archives images/skopeo/tar.txt lists (docker-archive:PATH@NAME or oci-archive:PATH@NAME, PATH
relative to images/skopeo, saved as NAME). References keep their tags and digests.

CONTEXT/.sealignore leaves images out: one pattern per line (# comments), '*' matching any
characters and '?' one; a pattern without tag or digest matches every tag and digest of the
repository (e.g. "quay.io/debug/*", "nginx", "*:debug").

Output: each image followed by the files that named it and why (text), one reference per
line (name), or a JSON array of {image, name, sources: [{file, reason}]} (json).`,
		Example: `  sealos registry images .
  sealos registry images ./my-app --output name
  sealos registry images ./my-app --output json | jq -r '.[].image'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "text", "name", "json":
			default:
				return fmt.Errorf("--output %q: want text, name or json", output)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			imgs, err := detect.Detect(ctx, args[0], detect.Options{Env: contextEnv(args[0]), Warn: printDetectWarning(cmd)})
			if err != nil {
				return err
			}
			return printDetectedImages(cmd.OutOrStdout(), imgs, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, name or json")
	return cmd
}

// printDetectedImages prints images as text (each with the files that named it and why),
// name (one reference per line) or json.
func printDetectedImages(out io.Writer, imgs []detect.Image, output string) error {
	switch output {
	case "json":
		if imgs == nil {
			imgs = []detect.Image{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(imgs)
	case "name":
		for _, i := range imgs {
			fmt.Fprintln(out, i.Ref)
		}
	default:
		for _, i := range imgs {
			fmt.Fprintln(out, i.Ref)
			for _, s := range i.Sources {
				fmt.Fprintf(out, "    %s: %s\n", s.File, s.Reason)
			}
		}
	}
	return nil
}
