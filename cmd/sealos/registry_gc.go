package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/registry/server"
)

func init() { addRegistryCommand(newRegistryGCCmd) }

func newRegistryGCCmd() *cobra.Command {
	var (
		opts   server.GCOptions
		output string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "gc DIR",
		Short: "Delete blobs no manifest refers to from a registry directory",
		Long: `gc garbage-collects the registry stored in DIR (the directory given to
'sealos registry serve filesystem'): blobs no manifest refers to are deleted, and with
--delete-untagged also the manifests no tag reaches (with their referrers).

It is safe while hubs serve DIR: it waits for their writes in flight and blocks new ones
while it runs, and the hubs forget deleted blobs afterwards. A push that races it is
stored whole or refused: a manifest naming a blob the collection took gets
MANIFEST_BLOB_UNKNOWN, and pushing again uploads the missing blob. Blobs written less than
--keep-recent ago are kept, because a client may have pushed them and not yet the manifest
that refers to them. Anything a manifest refers to is never deleted. Upload sessions of
pushes that were cut off are deleted after --purge-uploads; those of hubs that were
killed, and the temporary files of killed writes, are deleted whatever their age.`,
		Example: `  sealos registry gc /var/lib/registry --dry-run
  sealos registry gc /var/lib/registry --delete-untagged --keep-recent 0
  sealos registry gc ./registry -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: use text or json", output)
			}
			if !quiet && output == "text" {
				opts.Log = cmd.ErrOrStderr()
			}
			res, err := server.CollectGarbage(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			return printGCResult(cmd.OutOrStdout(), output, res)
		},
	}
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "report what would be deleted, delete nothing")
	cmd.Flags().BoolVar(&opts.DeleteUntagged, "delete-untagged", false, "also delete manifests no tag reaches")
	cmd.Flags().DurationVar(&opts.KeepRecent, "keep-recent", 10*time.Minute, "keep unreferenced blobs written less than this long ago (0 keeps none)")
	cmd.Flags().DurationVar(&opts.PurgeUploads, "purge-uploads", 24*time.Hour, "delete upload sessions started longer ago than this (cut pushes; 0 keeps them)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format: text or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "do not list each deletion on stderr")
	return cmd
}

func printGCResult(w io.Writer, output string, res server.GCResult) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	verb := "deleted"
	if res.DryRun {
		verb = "would delete"
	}
	_, err := fmt.Fprintf(w, "%d repositories, %d blobs in use; %s %d blobs (%.1f MB), %d manifests, %d stale uploads and %d temporary files; kept %d recent blobs\n",
		res.Repositories, res.MarkedBlobs, verb, len(res.DeletedBlobs), float64(res.FreedBytes)/1e6, len(res.DeletedManifests), res.PurgedUploads, res.RemovedTemps, res.KeptRecent)
	return err
}
