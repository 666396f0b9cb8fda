package buildkit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cluster-image/sealos/store"
	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	dockertypes "github.com/docker/cli/cli/config/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
)

// Local mount and frontend attribute names shared with the frontend. They follow BuildKit's
// dockerfile frontend, so a Kubefile build and a Dockerfile build take the same options.
const (
	// LocalContext is the build context directory.
	LocalContext = "context"
	// LocalKubefile is the directory holding the Kubefile; AttrFilename names the file in it.
	LocalKubefile = "dockerfile"
	// AttrFilename is the Kubefile's name inside LocalKubefile.
	AttrFilename = "filename"
	// AttrBuildArg prefixes a --build-arg: "build-arg:NAME" = value.
	AttrBuildArg = "build-arg:"
	// AttrLabel prefixes a --label: "label:NAME" = value.
	AttrLabel = "label:"
	// AttrTarget is the stage to build (--target).
	AttrTarget = "target"
	// AttrPlatform is the comma-separated list of target platforms (--platform).
	AttrPlatform = "platform"
	// AttrNoCache disables the cache for every step when set to "".
	AttrNoCache = "no-cache"
	// AttrContext prefixes a named context: "context:NAME" = "oci-layout://STORE/REF@DIGEST"
	// replaces image NAME in FROM (and COPY --from) by an image of a local OCI store.
	AttrContext = "context:"
	// ArgSourceDateEpoch is the build arg that makes a build reproducible.
	ArgSourceDateEpoch = "SOURCE_DATE_EPOCH"
	// StoreID is the OCI store key of the local image store in the build session.
	StoreID = "sealos-store"
)

// Compression of exported layers.
const (
	// CompressionNone stores layers as plain tar: fastest to build, largest to push.
	CompressionNone = "uncompressed"
	// CompressionZstd compresses at a low level: close to disk speed, about gzip's size.
	CompressionZstd = "zstd"
	// CompressionGzip is the most compatible choice and the slowest to build.
	CompressionGzip = "gzip"
)

// BuildOptions describe one build.
type BuildOptions struct {
	// ContextDir is the build context.
	ContextDir string
	// File is the path of the Kubefile.
	File string
	// Tags are the references the image gets in the store (normalized by the caller).
	Tags []string
	// BuildArgs, Labels, Target and Platforms are passed to the frontend.
	BuildArgs map[string]string
	Labels    map[string]string
	Target    string
	Platforms []string
	// NoCache rebuilds every step.
	NoCache bool
	// Compression of the layers: CompressionNone, CompressionZstd or CompressionGzip;
	// CompressionLevel 0 means the compressor's default for zstd-low (see DefaultCompression).
	Compression      string
	CompressionLevel int
	// Store is the local image store: the image is exported into it and tagged there, and
	// a FROM naming an image it holds uses that image (no registry is asked). Required.
	Store *store.Store
	// Frontend turns the Kubefile into LLB and an image config; it runs in this process and
	// talks to the engine through the gateway API.
	Frontend gwclient.BuildFunc
	// FrontendAttrs are more attributes for the frontend.
	FrontendAttrs map[string]string
	// Annotations are added to the manifest.
	Annotations map[string]string
	// Progress is the display mode: auto, tty, plain, quiet or rawjson; ProgressOut its
	// writer (default os.Stderr).
	Progress    string
	ProgressOut io.Writer
	// Auth gives the login for a registry host the engine pulls FROM images from; nil
	// pulls anonymously.
	Auth func(host string) (dockertypes.AuthConfig, error)
	// DockerFormat exports Docker v2 schema 2 media types instead of OCI ones (--format
	// docker); its layers must be gzip or uncompressed.
	DockerFormat bool
}

// DefaultCompression is what `sealos build` uses unless told otherwise. Cluster-image layers
// are unpacked by our own apply engine, never by a container runtime, and most of their
// bytes are container-image blobs under registry/ that are already compressed: gzip spends
// ~30 s per GB on them for a few percent. zstd at level 1 runs near disk speed and still
// shrinks manifests, charts and binaries well.
const (
	DefaultCompression      = CompressionZstd
	DefaultCompressionLevel = 1
)

// Result is what a build produced.
type Result struct {
	// Descriptor is the image manifest (or index, for several platforms) in the store.
	Descriptor ocispecs.Descriptor
	// Tags are the references written to the store.
	Tags []string
	// Steps counts the build steps that ran or came from cache; Cached those from cache.
	Steps, Cached int
	// ExporterResponse is BuildKit's raw exporter response.
	ExporterResponse map[string]string
}

// Build runs one build on the engine and writes the image into opt.StoreDir under every tag.
func (e *Engine) Build(ctx context.Context, opt BuildOptions) (*Result, error) {
	if opt.Frontend == nil {
		return nil, errors.New("build: no frontend")
	}
	if opt.Store == nil {
		return nil, errors.New("build: no image store")
	}
	// The export writes blobs straight into the store's layout; the lease keeps the
	// store's GC off them until they are tagged.
	release, err := opt.Store.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	solveOpt, cs, err := e.solveOpt(ctx, opt)
	if err != nil {
		return nil, err
	}
	res, count, err := e.solve(ctx, opt, solveOpt)
	if err != nil {
		return nil, explain(err)
	}
	desc, err := exportedDescriptor(res.ExporterResponse)
	if err != nil {
		return nil, err
	}
	if len(opt.Tags) > 0 {
		if err := opt.Store.TagDescriptor(ctx, toV1(desc), opt.Tags...); err != nil {
			return nil, fmt.Errorf("build: tag the image: %w", err)
		}
	}
	if n := cs.linked.Load(); n > 0 {
		slog.Debug("build: blobs linked from the engine's content store", "blobs", n, "bytes", cs.linkedSize.Load())
	}
	steps, cached := count.result()
	return &Result{Descriptor: desc, Tags: opt.Tags, Steps: steps, Cached: cached, ExporterResponse: res.ExporterResponse}, nil
}

// solveOpt is what the engine is asked: the context and Kubefile directories as locals,
// the store as both the source of local FROM images and the export target, the frontend
// attributes and the logins.
func (e *Engine) solveOpt(ctx context.Context, opt BuildOptions) (client.SolveOpt, *linkingStore, error) {
	var so client.SolveOpt
	ctxDir, err := filepath.Abs(opt.ContextDir)
	if err != nil {
		return so, nil, err
	}
	if fi, err := os.Stat(ctxDir); err != nil {
		return so, nil, fmt.Errorf("build context: %w", err)
	} else if !fi.IsDir() {
		return so, nil, fmt.Errorf("build context %s is not a directory", ctxDir)
	}
	file, err := filepath.Abs(opt.File)
	if err != nil {
		return so, nil, err
	}
	if _, err := os.Stat(file); err != nil {
		return so, nil, fmt.Errorf("kubefile: %w", err)
	}
	ctxFS, err := fsutil.NewFS(ctxDir)
	if err != nil {
		return so, nil, err
	}
	fileFS, err := fsutil.NewFS(filepath.Dir(file))
	if err != nil {
		return so, nil, err
	}
	local, err := contentlocal.NewStore(opt.Store.Dir())
	if err != nil {
		return so, nil, err
	}
	cs := &linkingStore{Store: local, dir: opt.Store.Dir()}
	if e.daemon != nil {
		cs.engineDir = e.daemon.ContentDir()
	}
	images, err := localImages(ctx, opt.Store)
	if err != nil {
		return so, nil, err
	}
	exp, err := exportAttrs(opt)
	if err != nil {
		return so, nil, err
	}
	sum := sha256.Sum256([]byte(ctxDir))
	so = client.SolveOpt{
		Exports: []client.ExportEntry{{
			Type:        client.ExporterOCI,
			Attrs:       exp,
			OutputStore: cs,
		}},
		LocalMounts:   map[string]fsutil.FS{LocalContext: ctxFS, LocalKubefile: fileFS},
		OCIStores:     map[string]content.Store{StoreID: cs},
		SharedKey:     hex.EncodeToString(sum[:8]),
		FrontendAttrs: frontendAttrs(opt, filepath.Base(file), images),
	}
	if opt.Auth != nil {
		so.Session = append(so.Session, authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
			AuthConfigProvider: func(_ context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (dockertypes.AuthConfig, error) {
				return opt.Auth(host)
			},
		}))
	}
	return so, cs, nil
}

// frontendAttrs are the frontend's attributes: the Dockerfile frontend's names for the
// build's options, and a named context for every image of the local store.
func frontendAttrs(opt BuildOptions, filename string, images map[string]digest.Digest) map[string]string {
	attrs := map[string]string{AttrFilename: filename}
	for k, v := range opt.BuildArgs {
		attrs[AttrBuildArg+k] = v
	}
	for k, v := range opt.Labels {
		attrs[AttrLabel+k] = v
	}
	if opt.Target != "" {
		attrs[AttrTarget] = opt.Target
	}
	if len(opt.Platforms) > 0 {
		attrs[AttrPlatform] = strings.Join(opt.Platforms, ",")
	}
	if opt.NoCache {
		attrs[AttrNoCache] = ""
	}
	for name, dgst := range images {
		attrs[AttrContext+name] = "oci-layout://" + StoreID + "/" + name + "@" + dgst.String()
	}
	for k, v := range opt.FrontendAttrs {
		attrs[k] = v
	}
	return attrs
}

// solve runs the build with the frontend in this process, showing BuildKit's progress
// display and counting the steps (and cache hits) on the way.
func (e *Engine) solve(ctx context.Context, opt BuildOptions, so client.SolveOpt) (*client.SolveResponse, *stepCounter, error) {
	mode := opt.Progress
	if mode == "" {
		mode = string(progressui.AutoMode)
	}
	out := opt.ProgressOut
	if out == nil {
		out = os.Stderr
	}
	display, err := progressui.NewDisplay(out, progressui.DisplayMode(mode))
	if err != nil {
		return nil, nil, fmt.Errorf("--progress %s: %w", mode, err)
	}
	ch := make(chan *client.SolveStatus)
	dch := make(chan *client.SolveStatus)
	count := &stepCounter{}
	var res *client.SolveResponse
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		var err error
		res, err = e.Client.Build(ectx, so, "sealos", opt.Frontend, ch)
		return err
	})
	eg.Go(func() error {
		defer close(dch)
		for s := range ch {
			count.add(s)
			dch <- s
		}
		return nil
	})
	eg.Go(func() error {
		// The display must drain dch to the end even on error, so it does not use ectx.
		_, err := display.UpdateFrom(context.WithoutCancel(ctx), dch)
		return err
	})
	if err := eg.Wait(); err != nil {
		return nil, nil, err
	}
	return res, count, nil
}

// localImages are the named images of the store, each offered to the frontend as a named
// context so FROM finds it without a registry.
func localImages(ctx context.Context, s *store.Store) (map[string]digest.Digest, error) {
	entries, err := s.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("build: list the local store: %w", err)
	}
	out := map[string]digest.Digest{}
	for _, e := range entries {
		if e.Name != "" {
			out[e.Name] = digest.Digest(e.Digest.String())
		}
	}
	return out, nil
}

// V1Descriptor is the result's descriptor as the store and go-containerregistry take it.
func (r *Result) V1Descriptor() v1.Descriptor { return toV1(r.Descriptor) }

func toV1(d ocispecs.Descriptor) v1.Descriptor {
	return v1.Descriptor{
		MediaType: types.MediaType(d.MediaType),
		Digest:    v1.Hash{Algorithm: d.Digest.Algorithm().String(), Hex: d.Digest.Encoded()},
		Size:      d.Size,
	}
}

func exportAttrs(opt BuildOptions) (map[string]string, error) {
	comp := opt.Compression
	level := opt.CompressionLevel
	if comp == "" {
		comp = DefaultCompression
		if level == 0 {
			level = DefaultCompressionLevel
		}
	}
	if err := CheckCompression(comp); err != nil {
		return nil, err
	}
	if opt.DockerFormat && comp == CompressionZstd {
		return nil, errors.New("the docker image format has no zstd layers: use --compression gzip (or uncompressed), or --format oci")
	}
	attrs := map[string]string{
		"compression": comp,
		// Cached layers keep the compression they were first exported with unless forced:
		// without it, --compression gzip after a zstd build gives zstd layers.
		"force-compression": "true",
		"oci-mediatypes":    strconv.FormatBool(!opt.DockerFormat),
		"tar":               "false",
	}
	if len(opt.Tags) > 0 {
		attrs["name"] = strings.Join(opt.Tags, ",")
	}
	if level != 0 && comp != CompressionNone {
		attrs["compression-level"] = strconv.Itoa(level)
	}
	for k, v := range opt.Annotations {
		attrs["annotation."+k] = v
	}
	if opt.BuildArgs[ArgSourceDateEpoch] != "" {
		// Reproducible images: the frontend sets the epoch as the image's created time;
		// file times newer than it are clamped in the layers too.
		attrs["rewrite-timestamp"] = "true"
	}
	return attrs, nil
}

// CheckCompression tells whether c names a layer compression.
func CheckCompression(c string) error {
	switch c {
	case CompressionNone, CompressionZstd, CompressionGzip:
		return nil
	}
	return fmt.Errorf("unknown compression %q: use %s, %s or %s", c, CompressionZstd, CompressionNone, CompressionGzip)
}

// CheckProgress tells whether m is a progress display mode.
func CheckProgress(m string) error {
	switch progressui.DisplayMode(m) {
	case progressui.AutoMode, progressui.TtyMode, progressui.PlainMode, progressui.QuietMode, progressui.RawJSONMode:
		return nil
	}
	return fmt.Errorf("unknown progress mode %q: use auto, tty, plain, quiet or rawjson", m)
}

func exportedDescriptor(resp map[string]string) (ocispecs.Descriptor, error) {
	var desc ocispecs.Descriptor
	raw := resp[exptypes.ExporterImageDescriptorKey]
	if raw == "" {
		dg := resp[exptypes.ExporterImageDigestKey]
		if dg == "" {
			return desc, errors.New("build: the exporter returned no image")
		}
		return desc, fmt.Errorf("build: the exporter returned digest %s without a descriptor", dg)
	}
	dt, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return desc, fmt.Errorf("build: exporter descriptor: %w", err)
	}
	if err := json.Unmarshal(dt, &desc); err != nil {
		return desc, fmt.Errorf("build: exporter descriptor: %w", err)
	}
	return desc, nil
}

// stepCounter counts completed vertices, and which of them were cache hits, leaving out
// BuildKit's internal ones (context transfer, metadata loads) that never cache.
type stepCounter struct {
	mu     sync.Mutex
	done   map[digest.Digest]bool // vertex -> cached
	orders []digest.Digest
}

func (c *stepCounter) add(s *client.SolveStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = map[digest.Digest]bool{}
	}
	for _, v := range s.Vertexes {
		if v.Completed == nil && !v.Cached {
			continue
		}
		if IsInternalStep(v.Name) {
			continue
		}
		if _, ok := c.done[v.Digest]; !ok {
			c.orders = append(c.orders, v.Digest)
		}
		c.done[v.Digest] = c.done[v.Digest] || v.Cached
	}
}

func (c *stepCounter) result() (steps, cached int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.orders {
		steps++
		if c.done[d] {
			cached++
		}
	}
	return steps, cached
}

// IsInternalStep tells BuildKit's bookkeeping vertices (loading the context or the
// Kubefile, resolving metadata or a local-store base image, exporting) from the build's own
// steps. Bookkeeping runs on every build and is never reported cached.
func IsInternalStep(name string) bool {
	if strings.HasPrefix(name, "[internal]") || strings.HasPrefix(name, "[auth]") {
		return true
	}
	if rest, ok := strings.CutPrefix(name, "[context "); ok {
		// A named context (a local-store image in FROM): its metadata and its load.
		if _, after, ok := strings.Cut(rest, "] "); ok {
			name = after
		}
	}
	for _, p := range []string{"load metadata for ", "OCI load from client", "load ", "exporting", "resolve "} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return slices.Contains([]string{"", "local://context", "local://dockerfile"}, name)
}

// explain turns engine errors users cannot act on into ones they can.
func explain(err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), ErrRuncMissing.Error()) {
		return fmt.Errorf("%w\n(builds without RUN work without runc)", ErrRuncMissing)
	}
	return err
}
