package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/store"
	"github.com/cluster-image/sealos/store/container"
)

func init() { addCommand(newCreateCmd) }

// containers are the working containers of create, mount, umount and rm.
func containers() container.Set {
	return container.Set{Dir: filepath.Join(global.root, "containers")}
}

func newCreateCmd() *cobra.Command {
	var (
		name, platformArg, output string
		short                     bool
	)
	cmd := &cobra.Command{
		Use:   "create IMAGE",
		Short: "Unpack an image into a directory to look inside it",
		Long: `create unpacks IMAGE from the local store into a working container, a directory
holding the image's files as the hosts would receive them (all layers, deletions applied),
and prints where it is. Nothing runs: this is for looking at what an image carries, e.g.
its registry/, charts and scripts, before 'sealos run'.

The directory is a copy: changing it never changes the image. 'sealos mount' lists the
containers and their paths; 'sealos rm' (or 'sealos umount') removes one.`,
		Example: `  sealos create sealos.hub/kubernetes:v1.34.4
  ls $(sealos create --short my/app:v1)/registry
  sealos create --name k8s --platform linux/arm64 sealos.hub/kubernetes:v1.34.4
  sealos rm k8s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			opts, err := platformOption(platformArg)
			if err != nil {
				return err
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			c, err := containers().Create(cmd.Context(), st, args[0], name, opts...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case output == "json":
				return json.NewEncoder(out).Encode(c)
			case short:
				fmt.Fprintln(out, c.Path)
			default:
				fmt.Fprintf(out, "container %s from %s\n%s\n", c.Name, c.Image, c.Path)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the container (default: <image>-working-container)")
	cmd.Flags().BoolVar(&short, "short", false, "print only the directory")
	cmd.Flags().StringVar(&platformArg, "platform", "", "os/arch[/variant] to unpack from a multi-platform index (default: this machine's)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format: text or json")
	return cmd
}
