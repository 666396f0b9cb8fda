package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
)

func newInspectCmd() *cobra.Command {
	var (
		platformArg string
		format      string
	)
	cmd := &cobra.Command{
		Use:   "inspect IMAGE...",
		Short: "Show an image of the local store as JSON",
		Long: `inspect prints, as a JSON array with one object per IMAGE (a name, name@digest or image ID
prefix): its names, manifest digest, image ID, the raw manifest and config, the
cluster-image type (sealos.io.type; a missing label means application), whether the image
satisfies the cluster-image contract (valid, validationError), labels, env, cmd,
entrypoint, and the container images saved in it (the sealos.io.images annotation).

For a multi-platform index it also prints the index and its platforms, and describes the
image for --platform (default: this machine's). --format prints a Go template instead, per
image, with the JSON field names capitalized ({{.Type}}, {{.Labels}}, {{.Env}}).`,
		Example: `  sealos inspect labring/kubernetes:v1.29.0
  sealos inspect 3f2a9c1b7d0e | jq '.[0].labels'
  sealos inspect --format '{{.Type}} {{.Valid}}' app:v1
  sealos inspect --platform linux/arm64 multi:v1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := platformOption(platformArg)
			if err != nil {
				return err
			}
			var tmpl *template.Template
			if format != "" {
				t, err := template.New("format").Funcs(template.FuncMap{
					"json": func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
				}).Parse(format)
				if err != nil {
					return fmt.Errorf("--format: %w", err)
				}
				tmpl = t
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			results := []*store.Inspection{}
			var errs []error
			for _, ref := range args {
				ins, err := st.Inspect(cmd.Context(), ref, opts...)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if tmpl != nil {
					if err := tmpl.Execute(out, ins); err != nil {
						return fmt.Errorf("--format: %w", err)
					}
					fmt.Fprintln(out)
					continue
				}
				results = append(results, ins)
			}
			if tmpl == nil {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&platformArg, "platform", "", "os/arch[/variant] of the image to describe in a multi-platform index")
	cmd.Flags().StringVarP(&format, "format", "f", "", "print each image with this Go template")
	return cmd
}

func init() { addCommand(newInspectCmd) }
