package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/internal/platform"
	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/store"
)

func newPullCmd() *cobra.Command {
	var (
		f           transferFlags
		platformArg string
		all         bool
		policy      string
	)
	cmd := &cobra.Command{
		Use:   "pull IMAGE...",
		Short: "Pull images from a registry into the local store",
		Long: `pull downloads each IMAGE from its registry into the local store, under the same name.

For a multi-platform index, only the image for --platform (default: this machine's) is
stored, unless --all stores the whole index with every platform. --policy says when the
registry is asked: always (default; an unchanged image is not downloaded again), missing
(only when the store has no image of that name) or never (fail unless it is in the store).
Blobs are verified against their digests. Credentials come from the docker config.json
(see sealos login) and its credential helpers.`,
		Example: `  sealos pull localhost:5000/apps/nginx:v1
  sealos pull --platform linux/arm64 docker.io/labring/kubernetes:v1.29.0
  sealos pull --all --policy missing registry.example.com/team/app:v1 registry.example.com/team/db:v2`,
		Annotations: batchGC,
		Args:        cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pol, err := client.ParsePolicy(policy)
			if err != nil {
				return err
			}
			opts, p, err := f.options()
			if err != nil {
				return err
			}
			if platformArg != "" {
				pl, err := platform.Parse(platformArg)
				if err != nil {
					return fmt.Errorf("--%w", err)
				}
				opts = append(opts, client.WithPlatform(pl))
			}
			st, err := store.Open(global.root)
			if err != nil {
				return err
			}
			// Several images are pulled at once (blobs within each are parallel already);
			// results keep the order of the arguments.
			pulled := make([]client.PullResult, len(args))
			errs := make([]error, len(args))
			var wg sync.WaitGroup
			sem := make(chan struct{}, 3)
			for i, ref := range args {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					pulled[i], errs[i] = client.Pull(cmd.Context(), st, ref, all, pol, opts...)
				}()
			}
			wg.Wait()
			p.CloseWith(errors.Join(errs...))
			var results []client.PullResult
			for i := range args {
				if errs[i] == nil {
					results = append(results, pulled[i])
				}
			}
			if f.output == "json" {
				if results == nil {
					results = []client.PullResult{}
				}
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s %s\n", r.Ref, r.Status, r.Digest)
				}
			}
			return errors.Join(errs...)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&platformArg, "platform", "", "os/arch[/variant] to pull from a multi-platform index (default: this machine's)")
	cmd.Flags().BoolVar(&all, "all", false, "pull every platform of a multi-platform index")
	cmd.Flags().StringVar(&policy, "policy", string(client.PolicyAlways), "when to ask the registry: always, missing or never")
	return cmd
}

func init() { addCommand(newPullCmd) }
