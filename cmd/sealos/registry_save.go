package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/builder/detect"
	"github.com/cluster-image/sealos/builder/save"
)

func init() { addRegistryCommand(newRegistrySaveCmd) }

type registrySaveOptions struct {
	registryDir string
	images      []string
	all         bool
	platforms   []string
	jobs        int
	output      string
}

func newRegistrySaveCmd() *cobra.Command {
	o := &registrySaveOptions{}
	cmd := &cobra.Command{
		Use:   "save CONTEXT",
		Short: "Pull the container images a build context needs into CONTEXT/registry",
		Long: `save pulls every container image the build context CONTEXT needs (see 'sealos registry
images') into CONTEXT/registry, or --registry-dir, in the on-disk layout of a docker
distribution registry, which 'sealos registry serve filesystem DIR' serves. Images keep
their repository path without the registry host (docker.io/library/nginx:1.25 is saved as
library/nginx:1.25) and their digests: nothing is recompressed. With --images, exactly
those images are saved instead of the ones the context names.

Blobs are fetched in parallel (--max-pull-procs at once) through a cache shared by all
builds under <root>/cache, so a blob is read from the network once; an interrupted save
picks up where it stopped. Of a multi-platform image, the index is kept as it is and the
images of --platform (default: this host's) are saved; --all keeps them all. Credentials
come from the docker config (sealos login); loopback registries are reached over HTTP.`,
		Example: `  sealos registry save .
  sealos registry save ./my-app --platform linux/amd64,linux/arm64
  sealos registry save ./my-app --images docker.io/library/nginx:1.25,quay.io/x/y@sha256:... --all
  sealos registry save ./my-app --registry-dir /tmp/registry --max-pull-procs 16 --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRegistrySave(cmd, o, args[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.registryDir, "registry-dir", "", "directory to save into (default CONTEXT/registry)")
	f.StringSliceVar(&o.images, "images", nil, "save these images instead of the ones CONTEXT names (comma separated or repeated)")
	f.BoolVar(&o.all, "all", false, "keep every image of a multi-platform index (attestations included)")
	f.StringSliceVar(&o.platforms, "platform", nil, "platforms to save of multi-platform images, os/arch[/variant] (default: this host's)")
	f.IntVar(&o.jobs, "max-pull-procs", save.DefaultJobs, "how many blobs and manifests to fetch at once")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func runRegistrySave(cmd *cobra.Command, o *registrySaveOptions, contextDir string) error {
	if o.output != "text" && o.output != "json" {
		return fmt.Errorf("--output %q: want text or json", o.output)
	}
	platforms, err := saveParsePlatforms(o.platforms)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var imgs []detect.Image
	if len(o.images) > 0 {
		var res detect.Result
		for _, i := range o.images {
			res.Add(i, detect.Source{File: "--images", Reason: "command line"})
		}
		if err := res.Err(); err != nil {
			return err
		}
		imgs = res.Images()
	} else {
		imgs, err = detect.Detect(ctx, contextDir, detect.Options{})
		if err != nil {
			return err
		}
	}
	dir := o.registryDir
	if dir == "" {
		dir = filepath.Join(contextDir, "registry")
	}
	res, err := save.Save(ctx, imgs, save.Options{
		RegistryDir: dir,
		CacheDir:    filepath.Join(global.root, "cache"),
		Platforms:   platforms,
		All:         o.all,
		Jobs:        o.jobs,
	})
	if res != nil {
		out := cmd.OutOrStdout()
		if o.output == "json" {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			if res.Images == nil {
				res.Images = []save.Saved{}
			}
			if jerr := enc.Encode(res); jerr != nil && err == nil {
				err = jerr
			}
		} else {
			for _, s := range res.Images {
				at := s.Repository
				if s.Tag != "" {
					at += ":" + s.Tag
				}
				fmt.Fprintf(out, "%s\t%s@%s\n", s.Ref, at, s.Digest)
			}
		}
	}
	return err
}

func saveParsePlatforms(specs []string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, s := range specs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := v1.ParsePlatform(s)
		if err != nil {
			return nil, fmt.Errorf("--platform %q: %w", s, err)
		}
		out = append(out, *p)
	}
	return out, nil
}
