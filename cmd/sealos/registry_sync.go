package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cluster-image/sealos/internal/platform"
	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/registry/server"
)

func init() { addRegistryCommand(newRegistrySyncCmd) }

// syncFlags are the flags registry sync and registry copy share.
type syncFlags struct {
	transferFlags
	platform    string
	all         bool
	noReferrers bool
	imageJobs   int
}

func (f *syncFlags) register(cmd *cobra.Command) {
	f.transferFlags.register(cmd)
	cmd.Flags().StringVar(&f.platform, "platform", "", "os/arch[/variant] copied from a multi-platform index (default: this machine's)")
	cmd.Flags().BoolVar(&f.all, "all", false, "copy every platform of a multi-platform index")
	cmd.Flags().BoolVar(&f.noReferrers, "no-referrers", false, "leave referrers (signatures, SBOMs, attestations) behind")
	cmd.Flags().IntVar(&f.imageJobs, "image-jobs", 8, "images to copy at once (blobs are bounded by --jobs)")
}

// options turns the flags into client and sync options; images are reported on stderr as
// they finish, blobs only on a terminal.
func (f *syncFlags) options(stderr io.Writer) ([]client.Option, client.SyncOptions, *client.Progress, error) {
	opts, err := f.clientOptions()
	if err != nil {
		return nil, client.SyncOptions{}, nil, err
	}
	var p *client.Progress
	if !f.quiet && term.IsTerminal(int(os.Stderr.Fd())) {
		p = client.NewProgress(stderr, true)
		opts = append(opts, client.WithProgress(p))
	}
	if f.platform != "" {
		pl, err := platform.Parse(f.platform)
		if err != nil {
			return nil, client.SyncOptions{}, nil, fmt.Errorf("--%w", err)
		}
		opts = append(opts, client.WithPlatform(pl))
	}
	if err := atLeastOne("--image-jobs", f.imageJobs); err != nil {
		return nil, client.SyncOptions{}, nil, err
	}
	so := client.SyncOptions{All: f.all, NoReferrers: f.noReferrers, ImageJobs: f.imageJobs}
	if !f.quiet {
		so.OnImage = func(r client.ImageResult) {
			switch r.Status {
			case client.StatusFailed:
				fmt.Fprintf(stderr, "failed  %s: %s\n", r.Source, r.Error)
			case client.StatusSkipped:
				fmt.Fprintf(stderr, "skipped %s (unchanged)\n", r.Source)
			default:
				fmt.Fprintf(stderr, "copied  %s -> %s (%d blobs, %s)\n", r.Source, r.Destination, r.Blobs, humanSize(r.Bytes))
			}
		}
	}
	return opts, so, p, nil
}

// printReport writes the summary (text or JSON) to stdout and the failures to stderr, and
// turns failed images into exit status 1.
func (f *syncFlags) printReport(cmd *cobra.Command, rep *client.SyncReport) error {
	out := cmd.OutOrStdout()
	if f.output == "json" {
		if rep.Images == nil {
			rep.Images = []client.ImageResult{}
		}
		if err := json.NewEncoder(out).Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "%d copied, %d skipped, %d failed; %d blobs (%s) sent, %d already there; %.2fs\n",
			rep.Copied, rep.Skipped, rep.Failed, rep.Blobs, humanSize(rep.Bytes), rep.BlobsSkipped, rep.Duration.Seconds())
	}
	if err := rep.Err(); err != nil {
		for _, im := range rep.Images {
			if im.Status == client.StatusFailed {
				fmt.Fprintf(cmd.ErrOrStderr(), "Error: %s: %s\n", im.Source, im.Error)
			}
		}
		return &exitError{code: 1}
	}
	return nil
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// localSource serves src on a loopback port when it is a hub storage directory (for
// instance the registry/ directory of a cluster image) and returns the address to read
// it from; otherwise src itself.
func localSource(src string) (string, func(), error) {
	if strings.HasPrefix(src, "/") || strings.HasPrefix(src, ".") {
		dir, err := filepath.Abs(src)
		if err != nil {
			return "", nil, err
		}
		if !server.IsStorageDir(dir) {
			return "", nil, fmt.Errorf("source %s: not a registry storage directory (no docker/registry/v2 in it)", src)
		}
		addr, stop, err := server.ServeLoopback(server.Config{RootDirectory: dir, ReadOnly: true})
		if err != nil {
			return "", nil, err
		}
		return addr, func() { _ = stop() }, nil
	}
	return src, func() {}, nil
}

func newRegistrySyncCmd() *cobra.Command {
	var (
		f     syncFlags
		repos []string
		tags  string
	)
	cmd := &cobra.Command{
		Use:   "sync SOURCE DESTINATION",
		Short: "Copy repositories from one registry to another, incrementally",
		Long: `sync copies every repository and tag of SOURCE to DESTINATION, both written
host[:port][/path]: registry to registry, or repository to repository.

Registry to registry: SOURCE without a path means every repository in its catalog
(narrowed by --repo), and a source repository R lands at DESTINATION's path joined with R:
"sync src:5000 dst:5000/docker.io" puts src:5000/library/nginx at
dst:5000/docker.io/library/nginx (the hub's mirror namespace for docker.io). Repository to
repository: "sync src:5000/library/nginx dst:5000/docker.io/library/nginx" (a bare
DESTINATION registry keeps the name). SOURCE may also be a registry storage directory
(./registry of a cluster image), served read-only for the sync.

Manifests are copied as raw bytes, so digests never change; referrers (signatures, SBOMs)
come along, found through the referrers API or the sha256-<hex> fallback tag. A tag the
destination already holds with the same digest costs one HEAD; blobs the destination has
are not sent again, so an interrupted sync picks up where it stopped. Blobs and images move
in parallel (--jobs, --image-jobs). Failed images are listed at the end and make the exit
status 1; the others are copied anyway.`,
		Example: `  # everything, every platform
  sealos registry sync --all registry.example.com:5000 sealos.hub:5000

  # one project's release tags into the hub's docker.io mirror namespace
  sealos registry sync --repo 'library/.*' --tags '^v?[0-9.]+$' src.example.com sealos.hub:5000/docker.io

  # one repository, every tag, to another name
  sealos registry sync src.example.com/library/nginx sealos.hub:5000/docker.io/library/nginx

  # the registry/ directory of a cluster image, as JSON for scripts
  sealos registry sync -o json ./rootfs/registry sealos.hub:5000`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, so, p, err := f.options(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			so.Repos, so.Tags = repos, tags
			src, stop, err := localSource(args[0])
			if err != nil {
				return err
			}
			defer stop()
			rep, err := client.Sync(cmd.Context(), src, args[1], so, opts...)
			p.CloseWith(err)
			if err != nil {
				return err
			}
			return f.printReport(cmd, rep)
		},
	}
	f.register(cmd)
	cmd.Flags().StringArrayVar(&repos, "repo", nil, "only repositories whose whole name matches this regular expression (repeatable; plain names also work with registries that have no catalog)")
	cmd.Flags().StringVar(&tags, "tags", "", "only tags matching this regular expression")
	return cmd
}
