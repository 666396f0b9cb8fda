package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/builder/buildkit"
	"github.com/cluster-image/sealos/builder/frontend"
	"github.com/cluster-image/sealos/builder/kubefile"
	"github.com/cluster-image/sealos/imagespec"
	"github.com/cluster-image/sealos/store"
)

func init() { addCommand(newBuildCmd) }

// buildFlags are the flags of `sealos build`.
type buildFlags struct {
	tags             []string
	file             string
	buildArgs        []string
	labels           []string
	target           string
	platforms        []string
	noCache          bool
	progress         string
	addr             string
	compression      string
	compressionLevel int
	insecure         []string
	output           string
	saveImage        bool
	imagesOnly       bool
}

func newBuildCmd() *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [flags] CONTEXT",
		Short: "Build a cluster image from a Kubefile",
		Long: `build turns a Kubefile and its context directory into a cluster image in the local store
(--root), tagged with every -t. Without -f, the context's Kubefile, Sealfile or Dockerfile is
used, in that order (see Kubefile.md for the dialect).

The build runs on a BuildKit engine embedded in sealos (state and cache under
<root>/buildkit, so an unchanged rebuild is all cache hits; needs root), or on the buildkitd
named by --buildkit-addr or $BUILDKIT_HOST. RUN needs runc on the build machine; every other
instruction works without it. FROM an image of the local store uses that image; any other
image is pulled from its registry.

Layers are compressed with zstd at level 1 by default: cluster images are unpacked by sealos,
not by a container runtime, and most of their bytes are container images that are already
compressed, so gzip would cost ~30 s per GB for a few percent. --compression gzip gives the
most compatible image, uncompressed the fastest build.

The image reference and digest go to stdout (--output json for scripts); progress to stderr.`,
		Example: `  sealos build -t my-app:v1 .
  sealos build -t labring/kubernetes:v1.29.0 -f Kubefile.rootfs --build-arg VERSION=1.29.0 ./rootfs
  sealos build -t app:v1 -t localhost:5000/app:v1 --label owner=ops --progress plain examples/app
  BUILDKIT_HOST=unix:///run/buildkit/buildkitd.sock sealos build -t app:v1 .`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.tags, "tag", "t", nil, "name the image NAME[:TAG] (repeatable)")
	fl.StringVarP(&f.file, "file", "f", "", "the Kubefile (default: Kubefile, Sealfile or Dockerfile in CONTEXT)")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "set an ARG: NAME=VALUE, or NAME to take it from the environment (repeatable)")
	fl.StringArrayVar(&f.labels, "label", nil, "add an image label KEY=VALUE (repeatable)")
	fl.StringVar(&f.target, "target", "", "build this stage of a multi-stage Kubefile")
	fl.StringSliceVar(&f.platforms, "platform", nil, "target platforms, e.g. linux/amd64,linux/arm64 (default: this machine's)")
	fl.BoolVar(&f.noCache, "no-cache", false, "do not use the build cache")
	fl.StringVar(&f.progress, "progress", "auto", "progress output: auto, tty, plain, quiet or rawjson")
	fl.StringVar(&f.addr, "buildkit-addr", "", "build on this buildkitd (unix:///path, tcp://host:port) instead of the embedded engine (default $BUILDKIT_HOST)")
	fl.StringVar(&f.compression, "compression", buildkit.DefaultCompression, "layer compression: zstd, gzip or uncompressed")
	fl.IntVar(&f.compressionLevel, "compression-level", 0, "compression level (default: 1 for zstd, the compressor's default for gzip)")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "reach this registry HOST:PORT over plain HTTP when pulling FROM images (repeatable; loopback always is)")
	fl.StringVarP(&f.output, "output", "o", "text", "result format: text or json")
	fl.BoolVar(&f.saveImage, "save-image", true, "save the container images the context needs (charts/, manifests/, images/shim/; see 'sealos registry images') into CONTEXT/registry before building, when the Kubefile copies registry/, and record them in the image's "+imagespec.AnnotationImages+" annotation")
	fl.BoolVar(&f.imagesOnly, "images-only", false, "only list the container images the context needs and why (--output json too), then exit")
	return cmd
}

// buildResult is what `sealos build --output json` prints.
type buildResult struct {
	Tags   []string `json:"tags"`
	Digest string   `json:"digest"`
	// Steps and Cached count the build steps and those that came from the cache.
	Steps  int `json:"steps"`
	Cached int `json:"cached"`
}

func runBuild(cmd *cobra.Command, f buildFlags, contextDir string) error {
	ctx := cmd.Context()
	if f.output != "text" && f.output != "json" {
		return fmt.Errorf("unknown --output %q: use text or json", f.output)
	}
	if err := buildkit.CheckCompression(f.compression); err != nil {
		return fmt.Errorf("--compression: %w", err)
	}
	if err := buildkit.CheckProgress(f.progress); err != nil {
		return fmt.Errorf("--progress: %w", err)
	}
	if _, err := parsePlatforms(f.platforms); err != nil {
		return err
	}
	tags := make([]string, 0, len(f.tags))
	for _, t := range f.tags {
		n, err := store.NormalizeRef(t)
		if err != nil {
			return fmt.Errorf("-t %q: %w", t, err)
		}
		tags = append(tags, n)
	}
	buildArgs, err := keyValues("--build-arg", f.buildArgs, true)
	if err != nil {
		return err
	}
	if _, ok := buildArgs[frontend.ArgSourceDateEpoch]; !ok {
		if v := os.Getenv(frontend.ArgSourceDateEpoch); v != "" {
			buildArgs[frontend.ArgSourceDateEpoch] = v
		}
	}
	labels, err := keyValues("--label", f.labels, false)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(contextDir); err != nil {
		return fmt.Errorf("build context: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("build context %s is not a directory", contextDir)
	}
	if f.imagesOnly {
		return buildImagesOnly(cmd, contextDir, f.output)
	}
	file := f.file
	if file == "" {
		p, err := kubefile.FindKubefile(contextDir)
		if err != nil {
			return err
		}
		file = p
	}
	// Parse here so a broken Kubefile fails at once, naming file and line, before any
	// engine starts.
	kf, err := kubefile.ParseFile(file)
	if err != nil {
		return err
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	st, err := store.Open(global.root)
	if err != nil {
		return err
	}

	var annotations map[string]string
	if f.saveImage {
		if annotations, err = buildSaveImages(cmd, contextDir, f.platforms, kf); err != nil {
			return err
		}
	}

	t0 := time.Now()
	engine, err := buildkit.Connect(ctx, f.addr, buildkit.DaemonOptions{
		Root:               filepath.Join(global.root, "buildkit"),
		InsecureRegistries: f.insecure,
		Debug:              global.debug,
	}, func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), msg) })
	if err != nil {
		return err
	}
	defer func() {
		t := time.Now()
		engine.Close()
		slog.Debug("build engine closed", "took", time.Since(t))
	}()
	slog.Debug("build engine ready", "addr", engine.Addr(), "took", time.Since(t0))
	t0 = time.Now()

	res, err := engine.Build(ctx, buildkit.BuildOptions{
		ContextDir:       contextDir,
		File:             file,
		Tags:             tags,
		BuildArgs:        buildArgs,
		Labels:           labels,
		Target:           f.target,
		Platforms:        f.platforms,
		NoCache:          f.noCache,
		Compression:      f.compression,
		CompressionLevel: f.compressionLevel,
		Store:            st,
		Frontend: frontend.BuildFunc(frontend.Options{
			File: kf, Source: src, Filename: file, Annotations: annotations,
			Warn: func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), "WARNING:", msg) },
		}),
		Progress:    f.progress,
		ProgressOut: cmd.ErrOrStderr(),
	})
	if err != nil {
		return err
	}
	slog.Debug("build done", "took", time.Since(t0))
	out := buildResult{Tags: tags, Digest: res.Descriptor.Digest.String(), Steps: res.Steps, Cached: res.Cached}
	if f.output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(tags) == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), out.Digest)
	}
	for _, t := range tags {
		fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", store.DisplayName(t), out.Digest)
	}
	return nil
}

// keyValues parses KEY=VALUE flags; with fromEnv, a bare KEY takes its value from the
// environment (and is left out when unset), as docker build does for --build-arg.
func keyValues(flag string, in []string, fromEnv bool) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range in {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, kv)
		}
		if !ok {
			if !fromEnv {
				return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, kv)
			}
			val, set := os.LookupEnv(k)
			if !set {
				continue
			}
			v = val
		}
		out[k] = v
	}
	return out, nil
}
