package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/builder/buildkit"
	"github.com/cluster-image/sealos/builder/frontend"
	"github.com/cluster-image/sealos/builder/kubefile"
	"github.com/cluster-image/sealos/builder/save"
	"github.com/cluster-image/sealos/imagespec"
	"github.com/cluster-image/sealos/registry/client"
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

	// sealos/buildah flags (build_compat.go)
	isolation     string
	env           []string
	maxPullProcs  int
	allPlatforms  bool
	quiet         bool
	pull          string
	squash        bool
	annotations   []string
	timestamp     int64
	login         loginFlags
	retry         int
	retryDelay    time.Duration
	manifest      string
	format        string
	from          string
	noCompression bool
	tlsVerify     bool
	iidfile       string
	osName, arch  string
	variant       string
	// args are the arguments left once a --pull value is taken from them.
	args []string
}

func newBuildCmd() *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [flags] [CONTEXT]",
		Short: "Build a cluster image from a Kubefile",
		Long: `build turns a Kubefile and its context directory into a cluster image in the local store
(--root), tagged with every -t. Without -f, the context's Kubefile, Sealfile, Dockerfile or
Containerfile is used, in that order (see Kubefile.md for the dialect). CONTEXT defaults to
the current directory.

The build runs on a BuildKit engine embedded in sealos (state and cache under
<root>/buildkit, so an unchanged rebuild is all cache hits; needs root), or on the buildkitd
named by --buildkit-addr or $BUILDKIT_HOST. RUN needs runc on the build machine; every other
instruction works without it. FROM an image of the local store uses that image; any other
image is pulled from its registry.

Layers are compressed with zstd at level 1 by default: cluster images are unpacked by sealos,
not by a container runtime, and most of their bytes are container images that are already
compressed, so gzip would cost ~30 s per GB for a few percent. --compression gzip gives the
most compatible image, uncompressed the fastest build.

The image reference and digest go to stdout (--output json for scripts); progress to stderr.

Scripts written for sealos (buildah) keep working: --env, --annotation, --squash,
--timestamp, --pull, --creds/--authfile, --retry, --manifest, --format, --from,
--all-platforms, --max-pull-procs, -q, -D and --os/--arch/--variant mean what they mean
there. --isolation, --layers, --rm, --force-rm and --jobs are accepted: the engine decides
those. Flags that cannot be honoured (--sign-by, --cache-from, --volume, ...) are refused
with a line that says what to do instead.`,
		Example: `  sealos build -t my-app:v1 .
  sealos build -t labring/kubernetes:v1.29.0 -f Kubefile.rootfs --build-arg VERSION=1.29.0 ./rootfs
  sealos build -t app:v1 -t localhost:5000/app:v1 --label owner=ops --progress plain examples/app
  BUILDKIT_HOST=unix:///run/buildkit/buildkitd.sock sealos build -t app:v1 .

  # reproducible: the same digest on every machine
  sealos build --timestamp 0 -t app:v1 .

  # one image per architecture, gathered in a manifest list and pushed with it
  sealos build --platform linux/amd64 --manifest app:v1 .
  sealos build --platform linux/arm64 --manifest app:v1 .
  sealos manifest push --all app:v1 registry.example.com/team/app:v1`,
		Args: func(cmd *cobra.Command, args []string) error {
			f.args = f.pullValueArg(cmd, args)
			return cobra.MaximumNArgs(1)(cmd, f.args)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			args := f.args
			contextDir := "."
			if len(args) == 1 {
				contextDir = args[0]
			}
			return runBuild(cmd, f, contextDir)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.tags, "tag", "t", nil, "name the image NAME[:TAG] (repeatable)")
	fl.StringVarP(&f.file, "file", "f", "", "the Kubefile (default: Kubefile, Sealfile, Dockerfile or Containerfile in CONTEXT)")
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
	f.registerCompat(cmd)
	return cmd
}

// registerCompat adds the flags sealos users' scripts pass, with buildah's meaning.
func (f *buildFlags) registerCompat(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.isolation, "isolation", "", "accepted for sealos scripts (oci, chroot or rootless): the build engine isolates RUN itself")
	fl.StringArrayVar(&f.env, "env", nil, "set KEY=VALUE in the image's environment, over the Kubefile's ENV; KEY alone takes this environment's value (repeatable)")
	fl.IntVar(&f.maxPullProcs, "max-pull-procs", save.DefaultJobs, "how many blobs to fetch at once when saving the context's container images")
	fl.BoolVar(&f.allPlatforms, "all-platforms", false, "build for every platform all the FROM images have")
	fl.BoolVar(&f.allPlatforms, "all", false, "same as --all-platforms")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress display (same as --progress quiet)")
	fl.StringVar(&f.pull, "pull", "missing", "FROM images: missing (use the local store's, pull the rest), always (pull into the store every time), true/newer (pull when the registry has a newer one; keep the store's if it cannot be reached) or never (the store's only); false means missing")
	fl.Lookup("pull").NoOptDefVal = "true"
	fl.BoolVar(&f.squash, "squash", false, "make the image one layer, base image included")
	fl.BoolVar(&f.squash, "squash-all", false, "same as --squash")
	fl.StringArrayVar(&f.annotations, "annotation", nil, "add a manifest annotation KEY=VALUE (repeatable)")
	fl.Int64Var(&f.timestamp, "timestamp", -1, "set the image's created time to these seconds since 1970 and clamp its files' times to it, so a rebuild gives the same digest (same as --build-arg SOURCE_DATE_EPOCH=N)")
	f.login.register(fl)
	fl.IntVar(&f.retry, "retry", 3, "retry a failed pull this many times")
	fl.DurationVar(&f.retryDelay, "retry-delay", 2*time.Second, "wait this long before the first retry (then longer)")
	fl.StringVar(&f.manifest, "manifest", "", "add the image to the manifest list NAME of the local store, creating it (see sealos manifest)")
	fl.StringVar(&f.format, "format", "oci", "image format: oci, or docker (Docker v2 media types; layers gzip unless --compression says otherwise)")
	fl.StringVar(&f.from, "from", "", "build FROM this image instead of the first FROM of the Kubefile")
	fl.BoolVarP(&f.noCompression, "disable-compression", "D", false, "store the layers uncompressed (same as --compression uncompressed)")
	fl.BoolVar(&f.tlsVerify, "tls-verify", true, "require HTTPS with a verified certificate for FROM registries; false reaches those of the Kubefile's FROM images over plain HTTP")
	fl.StringVar(&f.iidfile, "iidfile", "", "write the image ID to this file")
	fl.StringVar(&f.osName, "os", "", "build for this OS (with --arch and --variant, instead of --platform)")
	fl.StringVar(&f.arch, "arch", "", "build for this architecture, e.g. arm64")
	fl.StringVar(&f.variant, "variant", "", "build for this architecture variant, e.g. v8")
	// What buildah's flags ask for is already how the engine works.
	for _, n := range []string{"layers", "rm", "force-rm", "compress", "disable-content-trust"} {
		fl.Bool(n, false, "accepted for sealos scripts: the engine caches every step and leaves no containers behind")
		_ = fl.MarkHidden(n)
	}
	fl.Int("jobs", 0, "accepted for sealos scripts: the engine runs independent stages in parallel")
	_ = fl.MarkHidden("jobs")
	runHint := "RUN's container settings are the build engine's; set what a step needs inside the Kubefile"
	rs := []refusal{
		{name: "sign-by", takesValue: true, hint: "signing is not built in: sign the image after 'sealos push' with cosign or notation"},
		{name: "cache-from", takesValue: true, hint: "the build cache lives in --root's buildkit directory; share it by building on one buildkitd (--buildkit-addr)"},
		{name: "cache-to", takesValue: true, hint: "the build cache lives in --root's buildkit directory; share it by building on one buildkitd (--buildkit-addr)"},
		{name: "build-context", takesValue: true, hint: "copy the files into CONTEXT, or take them from an image with COPY --from=IMAGE"},
		{name: "secret", takesValue: true, hint: "pass build inputs with --build-arg or the context"},
		{name: "ssh", takesValue: true, hint: "fetch sources before the build and COPY them from the context"},
		{name: "volume", shorthand: "v", takesValue: true, hint: "COPY the files into the image instead of mounting them into RUN"},
		{name: "cert-dir", takesValue: true, hint: "add the registry's CA to the system trust store, or use --tls-verify=false / --insecure-registry"},
		{name: "logfile", takesValue: true, hint: "redirect the output instead: sealos build ... 2>FILE"},
		{name: "http-proxy", hint: "RUN does not get this machine's proxy variables; pass them with --build-arg HTTP_PROXY=... and an ARG HTTP_PROXY in the Kubefile"},
		{name: "network", takesValue: true, hint: runHint},
		{name: "add-host", takesValue: true, hint: runHint},
		{name: "dns", takesValue: true, hint: runHint},
		{name: "cap-add", takesValue: true, hint: runHint},
		{name: "cap-drop", takesValue: true, hint: runHint},
		{name: "security-opt", takesValue: true, hint: runHint},
		{name: "ulimit", takesValue: true, hint: runHint},
		{name: "memory", shorthand: "m", takesValue: true, hint: runHint},
		{name: "cpu-shares", takesValue: true, hint: runHint},
		{name: "shm-size", takesValue: true, hint: runHint},
		{name: "device", takesValue: true, hint: runHint},
		{name: "userns", takesValue: true, hint: runHint},
		{name: "runtime", takesValue: true, hint: runHint},
		{name: "unsetenv", takesValue: true, hint: "the image keeps its base's environment; override a variable with --env KEY=VALUE"},
		{name: "unsetlabel", takesValue: true, hint: "the image keeps its base's labels; override one with --label KEY=VALUE"},
		{name: "encrypt-layer", takesValue: true, hint: "encrypted layers are not supported"},
		{name: "decryption-key", takesValue: true, hint: "encrypted images are not supported"},
	}
	addRefusals(cmd, rs)
}

// buildResult is what `sealos build --output json` prints.
type buildResult struct {
	Tags   []string `json:"tags"`
	Digest string   `json:"digest"`
	// ID is the image ID (config digest; for several platforms, the index digest).
	ID string `json:"id,omitempty"`
	// Manifest is the manifest list the image was added to (--manifest).
	Manifest string `json:"manifest,omitempty"`
	// Steps and Cached count the build steps and those that came from the cache.
	Steps  int `json:"steps"`
	Cached int `json:"cached"`
}

// checkCompat turns the sealos/buildah flags into the ones the build uses, refusing what
// cannot be honoured.
func (f *buildFlags) checkCompat(cmd *cobra.Command, buildArgs map[string]string) error {
	if err := checkRefusals(cmd); err != nil {
		return err
	}
	if strings.Contains(f.output, "=") || f.output == "-" {
		return fmt.Errorf("-o/--output %q: here it is the result format (text or json); the image goes to the local store, and 'sealos save' writes it to an archive", f.output)
	}
	switch f.isolation {
	case "", "oci", "chroot", "rootless":
		if f.isolation != "" {
			slog.Debug("build: --isolation is decided by the build engine (runc)", "asked", f.isolation)
		}
	default:
		return fmt.Errorf("--isolation %q: use oci, chroot or rootless (the build engine isolates RUN with runc either way)", f.isolation)
	}
	if err := atLeastOne("--max-pull-procs", f.maxPullProcs); err != nil {
		return err
	}
	if f.retry < 0 {
		return fmt.Errorf("--retry %d: give 0 or more", f.retry)
	}
	mode, err := pullMode(f.pull)
	if err != nil {
		return err
	}
	f.pull = mode
	if f.quiet {
		f.progress = "quiet"
	}
	if f.noCompression {
		if cmd.Flags().Changed("compression") && f.compression != buildkit.CompressionNone {
			return fmt.Errorf("-D/--disable-compression and --compression %s disagree", f.compression)
		}
		f.compression = buildkit.CompressionNone
	}
	switch f.format {
	case "oci", "":
	case "docker", "v2s2":
		f.format = "docker"
		if !cmd.Flags().Changed("compression") && !f.noCompression {
			f.compression = buildkit.CompressionGzip
		}
	default:
		return fmt.Errorf("--format %q: use oci or docker", f.format)
	}
	if f.timestamp >= 0 {
		ts := strconv.FormatInt(f.timestamp, 10)
		if v, ok := buildArgs[frontend.ArgSourceDateEpoch]; ok && v != ts {
			return fmt.Errorf("--timestamp %s and --build-arg %s=%s disagree", ts, frontend.ArgSourceDateEpoch, v)
		}
		buildArgs[frontend.ArgSourceDateEpoch] = ts
	} else if cmd.Flags().Changed("timestamp") {
		return fmt.Errorf("--timestamp %d: give seconds since 1970, 0 or more", f.timestamp)
	}
	if f.osName != "" || f.arch != "" || f.variant != "" {
		if len(f.platforms) > 0 || f.allPlatforms {
			return errors.New("--os/--arch/--variant and --platform/--all-platforms both choose platforms: give one of them")
		}
		host := store.HostPlatform()
		p := v1.Platform{OS: cmp.Or(f.osName, host.OS), Architecture: cmp.Or(f.arch, host.Architecture), Variant: f.variant}
		f.platforms = []string{p.String()}
	}
	if f.allPlatforms && len(f.platforms) > 0 {
		return errors.New("--all-platforms and --platform both choose platforms: give one of them")
	}
	return nil
}

// pullValueArg takes back the value of "--pull VALUE": --pull may be given bare (meaning
// true), so the parser reads a separate VALUE as the first argument. buildah users write
// both forms; an argument that names a pull policy and no directory is that value.
func (f *buildFlags) pullValueArg(cmd *cobra.Command, args []string) []string {
	if len(args) == 0 || f.pull != "true" || !cmd.Flags().Changed("pull") {
		return args
	}
	if _, err := pullMode(args[0]); err != nil || args[0] == "" {
		return args
	}
	if fi, err := os.Stat(args[0]); err == nil && fi.IsDir() && len(args) == 1 {
		return args
	}
	f.pull = args[0]
	return args[1:]
}

// pullMode reads --pull: buildah's values, with true and false as buildah reads them.
func pullMode(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "missing", "false", "ifmissing", "":
		return "missing", nil
	case "always":
		return "always", nil
	case "true", "newer", "ifnewer":
		return "newer", nil
	case "never":
		return "never", nil
	}
	return "", fmt.Errorf("--pull %q: use always, missing, newer (true), never or false", s)
}

// buildInputs is what a build takes once the flags are checked and the Kubefile parsed.
type buildInputs struct {
	contextDir, file string
	kf               *kubefile.File
	buildArgs        map[string]string
	labels           map[string]string
	annotations      map[string]string
	env              []string
	imageEnv         map[string]string // the image's env as far as the Kubefile says
	tags             []string
	creds            client.Credentials
}

func runBuild(cmd *cobra.Command, f buildFlags, contextDir string) error {
	in, err := f.inputs(cmd, contextDir)
	if err != nil || in == nil {
		return err
	}
	st, err := store.Open(global.root)
	if err != nil {
		return err
	}
	insecure, err := prepareBuild(cmd, st, &f, in)
	if err != nil {
		return err
	}
	// Until the result is in the manifest list it may have no name: keep GC off it.
	release, err := st.Lease(cmd.Context())
	if err != nil {
		return err
	}
	defer release()
	res, err := runEngine(cmd, st, f, in, insecure)
	if err != nil {
		return err
	}
	return finishBuild(cmd, st, f, in.tags, res)
}

// inputs checks the flags, parses the Kubefile (so a broken one fails at once, naming
// file and line, before any engine starts) and works out what the build takes. With
// --images-only it does that job itself and returns nil inputs.
func (f *buildFlags) inputs(cmd *cobra.Command, contextDir string) (*buildInputs, error) {
	in := &buildInputs{contextDir: contextDir}
	var err error
	if in.buildArgs, err = keyValues("--build-arg", f.buildArgs, true); err != nil {
		return nil, err
	}
	if err := f.checkCompat(cmd, in.buildArgs); err != nil {
		return nil, err
	}
	if err := checkOutput(f.output); err != nil {
		return nil, err
	}
	if err := buildkit.CheckCompression(f.compression); err != nil {
		return nil, fmt.Errorf("--compression: %w", err)
	}
	if err := buildkit.CheckProgress(f.progress); err != nil {
		return nil, fmt.Errorf("--progress: %w", err)
	}
	if _, err := parsePlatforms(f.platforms); err != nil {
		return nil, err
	}
	for _, t := range f.tags {
		n, err := store.NormalizeRef(t)
		if err != nil {
			return nil, fmt.Errorf("-t %q: %w", t, err)
		}
		in.tags = append(in.tags, n)
	}
	if f.manifest != "" {
		if _, err := store.NormalizeRef(f.manifest); err != nil {
			return nil, fmt.Errorf("--manifest %q: %w", f.manifest, err)
		}
	}
	if _, ok := in.buildArgs[frontend.ArgSourceDateEpoch]; !ok {
		if v := os.Getenv(frontend.ArgSourceDateEpoch); v != "" {
			in.buildArgs[frontend.ArgSourceDateEpoch] = v
		}
	}
	if in.labels, err = keyValues("--label", f.labels, false); err != nil {
		return nil, err
	}
	if in.annotations, err = keyValues("--annotation", f.annotations, false); err != nil {
		return nil, err
	}
	if in.env, err = envItems(f.env); err != nil {
		return nil, err
	}
	if in.creds, err = f.login.credentials(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(contextDir); err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", contextDir)
	}
	in.file = f.file
	if in.file == "" {
		p, err := kubefile.FindKubefile(contextDir)
		if err != nil && !f.imagesOnly {
			return nil, err
		}
		in.file = p
	}
	if f.imagesOnly && in.file == "" {
		return nil, buildImagesOnly(cmd, contextDir, f.output, nil)
	}
	if in.kf, err = kubefile.ParseFile(in.file); err != nil {
		return nil, err
	}
	if f.from != "" {
		in.kf.Stages[0].Base = f.from
	}
	// *.tmpl manifests are rendered with the image's env to find their images.
	if in.imageEnv, err = in.kf.StaticEnv(f.target, in.buildArgs); err != nil {
		return nil, err
	}
	for _, kv := range in.env {
		k, v, _ := strings.Cut(kv, "=")
		in.imageEnv[k] = v
	}
	if f.imagesOnly {
		return nil, buildImagesOnly(cmd, contextDir, f.output, in.imageEnv)
	}
	return in, nil
}

// prepareBuild pulls the base images as --pull says (settling --all-platforms' platforms
// first) and saves the images the context needs into its registry/ dir. It returns the
// registries the engine may reach without TLS checks.
func prepareBuild(cmd *cobra.Command, st *store.Store, f *buildFlags, in *buildInputs) ([]string, error) {
	ropts := []client.Option{
		client.WithKeychain(in.creds.Keychain()), client.WithTLSVerify(f.tlsVerify),
		client.WithRetry(f.retry, f.retryDelay), client.WithUserAgent("sealos/" + version),
	}
	bases, err := in.kf.BaseImages(in.buildArgs, nil)
	if err != nil {
		return nil, err
	}
	insecure := f.insecure
	if !f.tlsVerify {
		insecure = append(insecure, registryHosts(bases)...)
	}
	if f.allPlatforms {
		if f.platforms, err = commonPlatforms(cmd, st, bases, ropts); err != nil {
			return nil, err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "building for %s\n", strings.Join(f.platforms, ", "))
	}
	if err := pullBases(cmd, st, bases, *f, ropts); err != nil {
		return nil, err
	}
	if f.saveImage {
		saved, err := buildSaveImages(cmd, in.contextDir, f.platforms, in.kf, saveTuning{env: in.imageEnv, jobs: f.maxPullProcs,
			keychain: in.creds.Keychain(), retries: f.retry, retryDelay: f.retryDelay})
		if err != nil {
			return nil, err
		}
		maps.Copy(in.annotations, saved)
	}
	return insecure, nil
}

// runEngine connects to (or starts) the BuildKit engine and builds into the store.
func runEngine(cmd *cobra.Command, st *store.Store, f buildFlags, in *buildInputs, insecure []string) (*buildkit.Result, error) {
	ctx := cmd.Context()
	src, err := os.ReadFile(in.file)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	engine, err := buildkit.Connect(ctx, f.addr, buildkit.DaemonOptions{
		Root:               filepath.Join(global.root, "buildkit"),
		InsecureRegistries: insecure,
		Debug:              global.debug,
	}, func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), msg) })
	if err != nil {
		return nil, err
	}
	defer func() {
		t := time.Now()
		engine.Close()
		slog.Debug("build engine closed", "took", time.Since(t))
	}()
	slog.Debug("build engine ready", "addr", engine.Addr(), "took", time.Since(t0))
	t0 = time.Now()
	res, err := engine.Build(ctx, buildkit.BuildOptions{
		ContextDir:       in.contextDir,
		File:             in.file,
		Tags:             in.tags,
		BuildArgs:        in.buildArgs,
		Labels:           in.labels,
		Target:           f.target,
		Platforms:        f.platforms,
		NoCache:          f.noCache,
		Compression:      f.compression,
		CompressionLevel: f.compressionLevel,
		DockerFormat:     f.format == "docker",
		Store:            st,
		Auth:             in.creds.Lookup,
		Frontend: frontend.BuildFunc(frontend.Options{
			File: in.kf, Source: src, Filename: in.file, Annotations: in.annotations,
			Env: in.env, Squash: f.squash, LocalOnly: f.pull == "never",
			OwnTransferPaths: frontend.OwnTransferPaths(in.kf, in.contextDir),
			Warn:             func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), "WARNING:", msg) },
		}),
		Progress:    f.progress,
		ProgressOut: cmd.ErrOrStderr(),
	})
	if err != nil {
		return nil, err
	}
	slog.Debug("build done", "took", time.Since(t0))
	return res, nil
}

// finishBuild adds the result to --manifest, writes --iidfile and says what was built.
func finishBuild(cmd *cobra.Command, st *store.Store, f buildFlags, tags []string, res *buildkit.Result) error {
	out := buildResult{Tags: tags, Digest: res.Descriptor.Digest.String(), Steps: res.Steps, Cached: res.Cached}
	id, err := st.ImageID(res.V1Descriptor())
	if err != nil {
		return err
	}
	out.ID = id.String()
	if f.manifest != "" {
		entries, err := st.ListEntryOf(res.V1Descriptor(), out.Digest, true, store.HostPlatform())
		if err != nil {
			return err
		}
		if _, err := st.EditList(cmd.Context(), f.manifest, store.CreateOrEdit, func(l *v1.IndexManifest) error {
			for _, e := range entries {
				store.PutListEntry(l, e)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("--manifest %s: %w", f.manifest, err)
		}
		out.Manifest = store.DisplayName(mustNormalize(f.manifest))
	}
	if f.iidfile != "" {
		if err := os.WriteFile(f.iidfile, []byte(out.ID), 0o644); err != nil {
			return fmt.Errorf("--iidfile: %w", err)
		}
	}
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

// envItems reads --env values: KEY=VALUE, or KEY alone for this environment's value (left
// out when unset), as buildah does.
func envItems(in []string) ([]string, error) {
	var out []string
	for _, kv := range in {
		k, _, ok := strings.Cut(kv, "=")
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
		if !ok {
			v, set := os.LookupEnv(k)
			if !set {
				continue
			}
			kv = k + "=" + v
		}
		out = append(out, kv)
	}
	return out, nil
}

// registryHosts are the registries of refs (for --tls-verify=false).
func registryHosts(refs []string) []string {
	var out []string
	for _, r := range refs {
		if ref, err := name.ParseReference(r); err == nil && !slices.Contains(out, ref.Context().RegistryStr()) {
			out = append(out, ref.Context().RegistryStr())
		}
	}
	return out
}

// commonPlatforms are the platforms every base image has (--all-platforms), in the order
// the first one lists them.
func commonPlatforms(cmd *cobra.Command, st *store.Store, bases []string, opts []client.Option) ([]string, error) {
	if len(bases) == 0 {
		return nil, errors.New("--all-platforms: every stage is FROM scratch, so no base image says which platforms to build; name them with --platform")
	}
	var common []string
	for i, b := range bases {
		ps, err := client.Platforms(cmd.Context(), st, b, opts...)
		if err != nil {
			return nil, fmt.Errorf("--all-platforms: platforms of %s: %w", b, err)
		}
		var have []string
		for _, p := range ps {
			have = append(have, p.String())
		}
		if i == 0 {
			common = have
			continue
		}
		common = slices.DeleteFunc(common, func(p string) bool { return !slices.Contains(have, p) })
	}
	if len(common) == 0 {
		return nil, fmt.Errorf("--all-platforms: %s have no platform in common", strings.Join(bases, ", "))
	}
	return common, nil
}

// pullBases applies --pull to the FROM images: always and newer pull them into the local
// store (where the build then finds them), never requires them there; missing leaves them
// to the engine, which pulls what the store lacks.
func pullBases(cmd *cobra.Command, st *store.Store, bases []string, f buildFlags, opts []client.Option) error {
	mode := f.pull // normalized by checkCompat
	if mode == "missing" {
		return nil
	}
	platforms, err := parsePlatforms(f.platforms)
	if err != nil {
		return err
	}
	all := len(platforms) > 1
	if len(platforms) == 1 {
		opts = append(opts, client.WithPlatform(platforms[0]))
	}
	policy := client.PolicyAlways
	if mode == "never" {
		policy = client.PolicyNever
	}
	for _, b := range bases {
		_, err := client.Pull(cmd.Context(), st, b, all, policy, opts...)
		switch {
		case err == nil:
		case mode == "never":
			return fmt.Errorf("--pull never: %s is not in the local store: pull it first, or use --pull missing", b)
		case mode == "newer":
			if _, rerr := st.Resolve(cmd.Context(), b); rerr != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: %v; building from the local store's %s\n", err, b)
		default:
			return err
		}
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
