package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func init() { addCommand(newRmCmd) }

func newRmCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "rm CONTAINER...",
		Short: "Remove working containers made by create",
		Long: `rm removes each CONTAINER made by 'sealos create' with its files, or all of them
with --all. The images they came from stay in the local store.`,
		Example: `  sealos rm kube-working-container
  sealos rm --all`,
		RunE: func(cmd *cobra.Command, args []string) error { return removeContainers(cmd, args, all) },
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every working container")
	return cmd
}

func removeContainers(cmd *cobra.Command, names []string, all bool) error {
	cs := containers()
	switch {
	case all && len(names) > 0:
		return errors.New("give container names or --all, not both")
	case all:
		list, err := cs.List()
		if err != nil {
			return err
		}
		for _, c := range list {
			names = append(names, c.Name)
		}
	case len(names) == 0:
		return errors.New("give the containers to remove (see 'sealos mount'), or --all")
	}
	var errs []error
	for _, n := range names {
		if err := cs.Remove(n); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), n)
	}
	return errors.Join(errs...)
}
