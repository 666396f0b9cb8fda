package main

import (
	"encoding/json"
	"fmt"

	units "github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
)

func newRmiCmd() *cobra.Command {
	var (
		force   bool
		noPrune bool
		output  string
	)
	cmd := &cobra.Command{
		Use:   "rmi IMAGE...",
		Short: "Remove images from the local store",
		Long: `rmi removes each IMAGE from the local store, like docker rmi:
  - a name (app:v1) removes that name; the image goes when no other name is left;
  - an image ID (prefix) or name@digest removes the image with all its names, but only
    with --force when it has more than one.
Blobs (layers, configs, manifests) no image refers to any more are then deleted, unless
--no-prune. Deletion waits for builds, pulls and loads still writing to the store.`,
		Example: `  sealos rmi app:v1
  sealos rmi -f 3f2a9c1b7d0e
  sealos rmi --output json localhost:5000/a:v1 localhost:5000/b:v1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			rep, rerr := st.RemoveImages(cmd.Context(), store.RemoveOptions{Force: force, NoPrune: noPrune}, args...)
			out := cmd.OutOrStdout()
			if output == "json" {
				if rep.Untagged == nil {
					rep.Untagged = []string{}
				}
				if rep.Deleted == nil {
					rep.Deleted = []v1.Hash{}
				}
				if err := json.NewEncoder(out).Encode(rep); err != nil {
					return err
				}
				return rerr
			}
			for _, n := range rep.Untagged {
				fmt.Fprintf(out, "Untagged: %s\n", store.DisplayName(n))
			}
			for _, d := range rep.Deleted {
				fmt.Fprintf(out, "Deleted: %s\n", d)
			}
			if rep.GC.Blobs > 0 {
				msg := fmt.Sprintf("Freed %s (%d blobs)", units.HumanSizeWithPrecision(float64(rep.GC.Bytes), 3), rep.GC.Blobs)
				if rep.GC.Held > 0 {
					msg += fmt.Sprintf("; %s more stay on disk in the build cache until 'sealos prune'", units.HumanSizeWithPrecision(float64(rep.GC.Held), 3))
				}
				fmt.Fprintln(cmd.ErrOrStderr(), msg)
			}
			return rerr
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove an image given by ID or digest with all its names")
	cmd.Flags().BoolVar(&noPrune, "no-prune", false, "keep blobs no image refers to any more")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format: text or json")
	return cmd
}

func init() { addCommand(newRmiCmd) }
