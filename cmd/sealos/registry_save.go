package main

import (
	"time"

	"encoding/json"
	"fmt"
	"github.com/google/go-containerregistry/pkg/authn"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/builder/detect"
	"github.com/cluster-image/sealos/builder/kubefile"
	"github.com/cluster-image/sealos/builder/save"
	"github.com/cluster-image/sealos/imagespec"
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
	platforms, err := parsePlatforms(o.platforms)
	if err != nil {
		return err
	}
	if err := atLeastOne("--max-pull-procs", o.jobs); err != nil {
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
		imgs, err = detect.Detect(ctx, contextDir, detect.Options{Env: contextEnv(contextDir), Warn: printDetectWarning(cmd)})
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
		fmt.Fprintf(cmd.ErrOrStderr(), "saved %d images into %s (%s fetched, %s reused)\n", len(res.Images), dir, saveMB(res.Fetched), saveMB(res.Reused))
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

// buildImagesOnly is `sealos build --images-only`: list what the context needs and why.
func buildImagesOnly(cmd *cobra.Command, contextDir, output string, env map[string]string) error {
	imgs, err := detect.Detect(cmd.Context(), contextDir, detect.Options{Env: env, Warn: printDetectWarning(cmd)})
	if err != nil {
		return err
	}
	return printDetectedImages(cmd.OutOrStdout(), imgs, output)
}

// contextEnv is the env the context's Kubefile gives the image it builds (kubefile.StaticEnv
// of the last stage, ARG defaults), to render *.tmpl manifests as a build would; nil when
// the context has no Kubefile or it does not parse (the build would say why).
func contextEnv(contextDir string) map[string]string {
	file, err := kubefile.FindKubefile(contextDir)
	if err != nil {
		return nil
	}
	kf, err := kubefile.ParseFile(file)
	if err != nil {
		return nil
	}
	env, err := kf.StaticEnv("", nil)
	if err != nil {
		return nil
	}
	return env
}

// saveTuning is how build saves images: --max-pull-procs, the logins and --retry.
type saveTuning struct {
	// env renders *.tmpl manifests (the Kubefile's ENV and --env).
	env        map[string]string
	jobs       int
	keychain   authn.Keychain
	retries    int
	retryDelay time.Duration
}

// buildSaveImages is the --save-image step of `sealos build`: it saves the images the
// context needs into CONTEXT/registry (for the build's platforms) and returns the manifest
// annotations that record them (imagespec.AnnotationImages). When the Kubefile never copies
// registry/ from the context, the images could not be embedded: nothing is pulled, and a
// warning says what the image will lack.
func buildSaveImages(cmd *cobra.Command, contextDir string, platformSpecs []string, kf *kubefile.File, t saveTuning) (map[string]string, error) {
	if !kubefileCopiesRegistry(kf) {
		imgs, err := detect.Detect(cmd.Context(), contextDir, detect.Options{Env: t.env, Warn: printDetectWarning(cmd)})
		if err == nil && len(imgs) > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: the context names %d container images (see 'sealos registry images %s') but %s never copies registry/, so they are not saved into the image; add 'COPY registry registry' to embed them\n", len(imgs), contextDir, kf.Name)
		}
		return nil, nil
	}
	var specs []string
	for _, p := range platformSpecs {
		specs = append(specs, strings.Split(p, ",")...)
	}
	platforms, err := parsePlatforms(specs)
	if err != nil {
		return nil, err
	}
	_, res, err := save.Context(cmd.Context(), contextDir, save.Options{
		CacheDir:   filepath.Join(global.root, "cache"),
		Platforms:  platforms,
		Jobs:       t.jobs,
		Keychain:   t.keychain,
		Retries:    t.retries,
		RetryDelay: t.retryDelay,
		Detect:     detect.Options{Env: t.env, Warn: printDetectWarning(cmd)},
	})
	if err != nil {
		return nil, err
	}
	if len(res.Images) == 0 {
		if _, named := kubefileRegistrySources(kf); named {
			return nil, save.CheckRegistryDir(contextDir)
		}
		return nil, nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "saved %d images into %s (%s fetched, %s reused)\n", len(res.Images), filepath.Join(contextDir, "registry"), saveMB(res.Fetched), saveMB(res.Reused))
	return map[string]string{imagespec.AnnotationImages: res.Refs()}, nil
}

// kubefileCopiesRegistry tells whether some COPY or ADD of kf takes registry/ (or the whole
// context) from the build context. A source with variables counts as copying it.
func kubefileCopiesRegistry(kf *kubefile.File) bool {
	copies, _ := kubefileRegistrySources(kf)
	return copies
}

// kubefileRegistrySources says whether kf copies registry/ from the context at all
// (copies), and whether some source names registry itself (named: BuildKit then fails
// when the context has none, where "COPY . ." does not).
func kubefileRegistrySources(kf *kubefile.File) (copies, named bool) {
	for _, st := range kf.Stages {
		for _, c := range st.Commands {
			cp, ok := c.(*kubefile.CopyCommand)
			if !ok || cp.From != "" {
				continue
			}
			for _, src := range cp.Sources {
				if src.Heredoc != nil {
					continue
				}
				p := strings.TrimPrefix(path.Clean("/"+strings.TrimSpace(src.Path)), "/")
				if p == "registry" || strings.HasPrefix(p, "registry/") {
					copies, named = true, true
					continue
				}
				if p == "" || strings.Contains(p, "$") {
					copies = true
					continue
				}
				if first, _, _ := strings.Cut(p, "/"); first != "registry" {
					if ok, _ := path.Match(first, "registry"); ok {
						copies = true
					}
				}
			}
		}
	}
	return copies, named
}

// printDetectWarning prints a detection warning as "WARNING: file:line: message".
func printDetectWarning(cmd *cobra.Command) func(detect.Warning) {
	return func(w detect.Warning) { fmt.Fprintln(cmd.ErrOrStderr(), "WARNING:", w.String()) }
}

func saveMB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
