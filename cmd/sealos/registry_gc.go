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
		opts       server.GCOptions
		output     string
		quiet      bool
		configFile string
	)
	cmd := &cobra.Command{
		Use:   "gc DIR | --config FILE",
		Short: "Delete blobs no manifest refers to from a registry directory or bucket",
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
killed, and the temporary files of killed writes, are deleted whatever their age.

With --config, gc collects the storage a distribution configuration file names (the one
'sealos registry serve --config' serves). A bucket (s3) that replicas share is collected
only while none of them writes: their Redis lists the writable ones, and gc refuses while
any is; serve them --read-only (or stop them) first. Without Redis nothing can tell, and gc
asks you to vouch with --others-read-only. Afterwards it drops the blob descriptor cache
from Redis, so no replica answers for a deleted blob.`,
		Example: `  sealos registry gc /var/lib/registry --dry-run
  sealos registry gc /var/lib/registry --delete-untagged --keep-recent 0
  sealos registry gc ./registry -o json
  sealos registry gc --config /etc/registry/config.yml   # the replicas' bucket`,
		Args: func(cmd *cobra.Command, args []string) error {
			if configFile != "" {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if !quiet && output == "text" {
				opts.Log = cmd.ErrOrStderr()
			}
			var res server.GCResult
			var err error
			if configFile != "" {
				dc, lerr := server.LoadDistributionConfig(configFile)
				if lerr != nil {
					return lerr
				}
				res, err = server.CollectGarbageStorage(cmd.Context(), dc, opts)
			} else {
				res, err = server.CollectGarbage(cmd.Context(), args[0], opts)
			}
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
	cmd.Flags().StringVar(&configFile, "config", "", "collect the storage this distribution configuration file names (instead of DIR)")
	cmd.Flags().BoolVar(&opts.OthersReadOnly, "others-read-only", false, "vouch that no other hub writes to the shared storage (only where their Redis cannot tell)")
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
