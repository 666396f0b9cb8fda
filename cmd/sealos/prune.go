package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/builder/buildkit"
	"github.com/cluster-image/sealos/builder/save"
	"github.com/cluster-image/sealos/store"
)

func init() { addCommand(newPruneCmd) }

// pruneFlags are the flags of `sealos prune` and `sealos builder prune`.
type pruneFlags struct {
	all         bool
	keepStorage string
	filters     []string
	force       bool
	output      string
	addr        string
}

func (f *pruneFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVarP(&f.all, "all", "a", false, "remove all unused build cache (also what BuildKit keeps for reuse: internal and shared records) and the whole image-save cache")
	fl.StringVar(&f.keepStorage, "keep-storage", "", "keep up to this much build cache, the most recently used (e.g. 10GB)")
	fl.StringArrayVar(&f.filters, "filter", nil, "until=DURATION: remove only what was not used within DURATION (e.g. until=24h)")
	fl.BoolVarP(&f.force, "force", "f", false, "accepted for docker and buildah scripts: nothing in use is ever removed, so there is no prompt")
	fl.StringVarP(&f.output, "output", "o", "text", "result format: text or json")
	fl.StringVar(&f.addr, "buildkit-addr", "", "prune this buildkitd's cache instead of the embedded engine's (default $BUILDKIT_HOST)")
}

// pruneResult is what a prune removed, part by part.
type pruneResult struct {
	Store      *store.GCReport              `json:"store,omitempty"`
	BuildCache buildkit.PruneReport         `json:"buildCache"`
	SaveCache  struct{ Files, Bytes int64 } `json:"saveCache"`
	Total      int64                        `json:"total"`
}

func (f *pruneFlags) options() (buildkit.PruneOptions, error) {
	var o buildkit.PruneOptions
	if err := checkOutput(f.output); err != nil {
		return o, err
	}
	o.All = f.all
	if f.keepStorage != "" {
		n, err := units.RAMInBytes(f.keepStorage)
		if err != nil || n < 0 {
			return o, fmt.Errorf("--keep-storage %q: want a size such as 512MB or 10GB", f.keepStorage)
		}
		o.KeepStorage = n
	}
	for _, fl := range f.filters {
		k, v, _ := strings.Cut(fl, "=")
		if k != "until" {
			return o, fmt.Errorf("--filter %q: only until=DURATION is supported (e.g. until=24h)", fl)
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("--filter %q: want a duration such as 24h or 30m", fl)
		}
		o.KeepDuration = d
	}
	return o, nil
}

// runPrune removes unused build cache and image-save cache and, with withStore, the
// store's blobs no image refers to.
func runPrune(cmd *cobra.Command, f *pruneFlags, withStore bool) error {
	opts, err := f.options()
	if err != nil {
		return err
	}
	var res pruneResult
	if withStore {
		st, err := store.Open(global.root)
		if err != nil {
			return err
		}
		rep, err := st.GC(cmd.Context())
		if err != nil {
			return err
		}
		res.Store = &rep
	}
	engine, err := buildkit.Connect(cmd.Context(), f.addr, buildkit.DaemonOptions{
		Root: filepath.Join(global.root, "buildkit"), Debug: global.debug,
	}, func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), msg) })
	if err != nil {
		return err
	}
	res.BuildCache, err = engine.Prune(cmd.Context(), opts)
	if cerr := engine.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	keep := opts.KeepDuration
	if keep == 0 && !opts.All {
		// without --all or a filter, blobs used in the last day stay for the next save
		keep = 24 * time.Hour
	}
	files, bytes, err := save.Cache{Dir: filepath.Join(global.root, "cache")}.Prune(keep)
	if err != nil {
		return fmt.Errorf("prune the image-save cache: %w", err)
	}
	res.SaveCache.Files, res.SaveCache.Bytes = int64(files), bytes
	res.Total = res.BuildCache.Bytes + bytes
	if res.Store != nil {
		res.Total += res.Store.Bytes
	}
	if f.output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	out := cmd.OutOrStdout()
	h := func(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }
	if res.Store != nil {
		fmt.Fprintf(out, "store: %d unused blobs, %s\n", res.Store.Blobs, h(res.Store.Bytes+res.Store.Held))
	}
	fmt.Fprintf(out, "build cache: %d records, %s\n", res.BuildCache.Records, h(res.BuildCache.Bytes))
	fmt.Fprintf(out, "image-save cache: %d blobs, %s\n", files, h(bytes))
	fmt.Fprintf(out, "Total reclaimed space: %s\n", h(res.Total))
	return nil
}

func newPruneCmd() *cobra.Command {
	var f pruneFlags
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove unused blobs, build cache and image-save cache",
		Long: `prune frees the disk space sealos holds under --root for nothing in use:
  - blobs of the local store that no image refers to (left after 'sealos rmi --no-prune'
    or an interrupted write);
  - the build cache of the embedded BuildKit engine (or of --buildkit-addr), as
    'docker builder prune' does: without --all, BuildKit keeps internal records and those
    other records share; --filter until=24h keeps what was used within 24 h,
    --keep-storage 10GB the most recently used 10 GB;
  - the blobs the image save (build --save-image, registry save) keeps for the next save,
    unless used within the last day (all of them with --all, or those older than until=).
A build's layers are held by the store and by the build cache at once (one copy on disk,
two names), so 'sealos rmi' frees them from disk only once the build cache lets go too:
'sealos rmi' says how much that is, and prune frees it. Nothing a running build or an image
of the store uses is removed.`,
		Example: `  sealos prune
  sealos prune --all
  sealos prune --filter until=72h --keep-storage 20GB -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runPrune(cmd, &f, true) },
	}
	f.register(cmd)
	return cmd
}
