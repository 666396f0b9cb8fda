package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
)

func newTagCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tag SOURCE TARGET...",
		Short: "Give an image in the local store more names",
		Long: `tag names the image SOURCE also TARGET (each of them), in the local store. SOURCE is a
name, a name@digest, or an image ID (prefix); each TARGET is a name, completed like docker
("app:v1" is docker.io/library/app:v1). A TARGET that named another image is moved. No
blob is copied: names share the image.`,
		Example: `  sealos tag app:v1 localhost:5000/team/app:v1
  sealos tag 3f2a9c1b7d0e app:latest app:stable`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			for _, dst := range args[1:] {
				if err := st.Tag(cmd.Context(), args[0], dst); err != nil {
					return err
				}
				full, _ := store.NormalizeRef(dst)
				fmt.Fprintf(cmd.OutOrStdout(), "Tagged %s\n", full)
			}
			return nil
		},
	}
	return cmd
}

func init() { addCommand(newTagCmd) }
