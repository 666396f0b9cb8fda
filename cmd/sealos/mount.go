package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store/container"
)

func init() { addCommand(newMountCmd) }

func newMountCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "mount [CONTAINER...]",
		Short: "Print where working containers' files are",
		Long: `mount prints the directory of each CONTAINER made by 'sealos create', or of every
container when none is named. The containers are plain directories, always there: no
mount is made, and 'sealos umount' removes the container.`,
		Example: `  sealos mount
  cd $(sealos mount kube-working-container)
  sealos mount -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cs := containers()
			var list []container.Container
			if len(args) == 0 {
				all, err := cs.List()
				if err != nil {
					return err
				}
				list = all
			}
			for _, n := range args {
				c, err := cs.Get(n)
				if err != nil {
					return err
				}
				list = append(list, *c)
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				if list == nil {
					list = []container.Container{}
				}
				return json.NewEncoder(out).Encode(list)
			}
			if len(args) > 0 {
				for _, c := range list {
					fmt.Fprintln(out, c.Path)
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			for _, c := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Path, c.Image)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format: text or json")
	return cmd
}
