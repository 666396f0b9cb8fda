package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cluster-image/sealos/builder/kubefile"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/frontend/dockerui"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/errdefs"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Frontend attributes BuildFunc reads (the Dockerfile frontend's names), besides build-arg:*,
// label:*, target, platform, no-cache and context:* which BuildKit's dockerui reads.
const (
	// AttrFilename is the Kubefile's name in the "dockerfile" local.
	AttrFilename = "filename"
	// AttrAnnotation prefixes an extra manifest annotation: "annotation:KEY" = value.
	AttrAnnotation = "annotation:"
	// ArgSourceDateEpoch is the build arg that makes the image reproducible: its value, in
	// seconds since 1970, is the image's created time (and the history's).
	ArgSourceDateEpoch = "SOURCE_DATE_EPOCH"
	// LocalContext and LocalKubefile are the local mount names of the context directory
	// and of the directory holding the Kubefile.
	LocalContext  = "context"
	LocalKubefile = "dockerfile"
	// DefaultFilename is the Kubefile name read from LocalKubefile when AttrFilename is unset.
	DefaultFilename = "Kubefile"
)

// Options configure BuildFunc. What they leave empty comes from the frontend attributes, so a
// build driven only by attributes (a remote gateway frontend) works too.
type Options struct {
	// File is the parsed Kubefile. When nil, Source is parsed, and when that is empty too the
	// Kubefile is read from the LocalKubefile mount (AttrFilename, default "Kubefile").
	File *kubefile.File
	// Source and Filename are the Kubefile's bytes and name for messages.
	Source   []byte
	Filename string
	// BuildArgs and Labels are merged over the build-arg:* and label:* attributes.
	BuildArgs map[string]string
	Labels    map[string]string
	// Annotations are extra manifest annotations, merged over annotation:* attributes.
	Annotations map[string]string
	// Target is the stage to build; "" uses the target attribute, then the last stage.
	Target string
	// SourceDateEpoch overrides the SOURCE_DATE_EPOCH build arg.
	SourceDateEpoch *time.Time
	// Warn receives warnings (such as build args no ARG uses); nil logs them with slog.
	Warn func(msg string)
	// Env are KEY=VALUE items set in the image config's environment, over the Kubefile's
	// ENV (buildah's --env).
	Env []string
	// Squash makes the image a single layer (buildah's --squash).
	Squash bool
	// LocalOnly refuses a FROM image that no named context provides (the local store),
	// instead of pulling it: --pull never.
	LocalOnly bool
	// OwnTransferPaths are the context paths ("/registry") a COPY may transfer alone (see
	// OwnTransferPaths and ConvertOptions.OwnTransfer).
	OwnTransferPaths map[string]bool
}

// Build is BuildFunc(Options{}): the Kubefile and every option come from the frontend
// attributes and the "dockerfile" local.
func Build(ctx context.Context, c gwclient.Client) (*gwclient.Result, error) {
	return BuildFunc(Options{})(ctx, c)
}

// BuildFunc returns the gateway build function for a Kubefile. The result carries the image
// config ("containerimage.config"), the manifest annotations and, when SOURCE_DATE_EPOCH is
// set, the exporter epoch. Images named in FROM resolve through the named contexts
// ("context:NAME" attributes, e.g. oci-layout://STORE/NAME@DIGEST for local-store images)
// and otherwise through the engine's registry resolver.
func BuildFunc(opts Options) gwclient.BuildFunc {
	return func(ctx context.Context, c gwclient.Client) (*gwclient.Result, error) {
		return build(ctx, c, opts)
	}
}

func build(ctx context.Context, c gwclient.Client, opts Options) (*gwclient.Result, error) {
	bc, err := dockerui.NewClient(c)
	if err != nil {
		return nil, fmt.Errorf("frontend: %w", err)
	}
	attrs := bc.BuildOpts().Opts
	AliasNamedContexts(attrs)

	warn := opts.Warn
	if warn == nil {
		warn = func(msg string) { slog.Warn(msg) }
	}
	f, err := loadKubefile(ctx, bc, attrs, opts)
	if err != nil {
		return nil, err
	}

	buildArgs := maps.Clone(bc.BuildArgs)
	if buildArgs == nil {
		buildArgs = map[string]string{}
	}
	maps.Copy(buildArgs, opts.BuildArgs)
	labels := maps.Clone(bc.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, opts.Labels)
	annotations := map[string]string{}
	for k, v := range attrs {
		if strings.HasPrefix(k, AttrAnnotation) {
			annotations[strings.TrimPrefix(k, AttrAnnotation)] = v
		}
	}
	maps.Copy(annotations, opts.Annotations)
	target := opts.Target
	if target == "" {
		target = bc.Target
	}
	epoch := opts.SourceDateEpoch
	if epoch == nil {
		if epoch, err = ParseEpoch(buildArgs[ArgSourceDateEpoch]); err != nil {
			return nil, err
		}
	}

	mainCtx, err := bc.MainContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("frontend: build context: %w", err)
	}
	images := &gatewayImages{bc: bc, c: c, localOnly: opts.LocalOnly}
	var buildPlatform *ocispecs.Platform
	if len(bc.BuildPlatforms) > 0 {
		buildPlatform = &bc.BuildPlatforms[0]
	}

	var mu sync.Mutex
	perPlatform := map[string]map[string]string{}
	var warnOnce sync.Once
	rb, err := bc.Build(ctx, func(ctx context.Context, platform *ocispecs.Platform, _ int) (*dockerui.BuildResult, error) {
		res, err := Convert(ctx, f, ConvertOptions{
			BuildArgs:       buildArgs,
			Labels:          labels,
			Annotations:     annotations,
			Target:          target,
			TargetPlatform:  platform,
			BuildPlatform:   buildPlatform,
			Context:         mainCtx,
			ContextPath:     contextPath(ctx, bc, mainCtx),
			OwnTransfer:     func(p string) bool { return opts.OwnTransferPaths[p] },
			Images:          images,
			SourceDateEpoch: epoch,
			NoCache:         bc.IsNoCache(""),
		})
		if err != nil {
			return nil, err
		}
		// Every platform converts the same Kubefile: say each warning once.
		warnOnce.Do(func() {
			if len(res.UnusedBuildArgs) > 0 {
				warn(fmt.Sprintf("%s: build args not used by any ARG: %s", f.Name, strings.Join(res.UnusedBuildArgs, ", ")))
			}
			for _, w := range res.Warnings {
				warn(w)
			}
		})
		if opts.Squash && layers(res.Image.History) > 1 {
			// One layer or none is squashed already: the copy would only cost time.
			res.State = squash(res.State)
			res.Image.History = squashedHistory(res.Image.History, epoch)
		}
		if len(opts.Env) > 0 {
			res.Image.Config.Env = mergeEnv(res.Image.Config.Env, opts.Env)
		}
		def, err := res.State.Marshal(ctx, llb.Platform(res.Platform))
		if err != nil {
			return nil, fmt.Errorf("frontend: marshal LLB: %w", err)
		}
		r, err := c.Solve(ctx, gwclient.SolveRequest{Definition: def.ToPB(), CacheImports: bc.CacheImports, Evaluate: true})
		if err != nil {
			return nil, detach(err)
		}
		ref, err := r.SingleRef()
		if err != nil {
			return nil, err
		}
		mu.Lock()
		key := ""
		if platform != nil {
			key = platforms.FormatAll(platforms.Normalize(*platform))
		}
		perPlatform[key] = res.Annotations
		mu.Unlock()
		img := res.Image
		return &dockerui.BuildResult{Reference: ref, Image: &img, Epoch: epoch}, nil
	})
	if err != nil {
		return nil, err
	}
	for key, ann := range perPlatform {
		var p *ocispecs.Platform
		if bc.MultiPlatformRequested && key != "" {
			pp, err := platforms.Parse(key)
			if err != nil {
				return nil, err
			}
			p = &pp
		}
		for k, v := range ann {
			rb.AddMeta(exptypes.AnnotationManifestKey(p, k), []byte(v))
		}
	}
	return rb.Finalize()
}

// contextPath gives the context's path p alone: its own transfer, with the .dockerignore
// rules of the whole context, so what is copied is sent once and nothing else is.
func contextPath(ctx context.Context, bc *dockerui.Client, whole *llb.State) func(string) llb.State {
	return func(p string) llb.State {
		if p == "/" {
			return *whole
		}
		st, err := bc.MainContext(ctx,
			llb.IncludePatterns([]string{strings.TrimPrefix(p, "/")}),
			llb.SharedKeyHint("context:"+p),
			llb.WithCustomName("[internal] load build context "+p))
		if err != nil {
			return *whole
		}
		return *st
	}
}

// loadKubefile returns the parsed Kubefile from opts or the LocalKubefile mount.
func loadKubefile(ctx context.Context, bc *dockerui.Client, attrs map[string]string, opts Options) (*kubefile.File, error) {
	if opts.File != nil {
		return opts.File, nil
	}
	name := opts.Filename
	if name == "" {
		name = attrs[AttrFilename]
	}
	if name == "" {
		name = DefaultFilename
		attrs[AttrFilename] = DefaultFilename
	}
	data := opts.Source
	if len(data) == 0 {
		src, err := bc.ReadEntrypoint(ctx, "Kubefile")
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		data = src.Data
	}
	return kubefile.Parse(path.Base(name), bytes.NewReader(data))
}

// ParseEpoch parses a SOURCE_DATE_EPOCH value (seconds since 1970); "" is nil.
func ParseEpoch(v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("invalid %s %q: want seconds since 1970-01-01, e.g. $(git log -1 --format=%%ct)", ArgSourceDateEpoch, v)
	}
	t := time.Unix(sec, 0).UTC()
	return &t, nil
}

// AliasNamedContexts adds, for every "context:REF" attribute, the same context under the
// short name BuildKit looks up for a FROM (docker.io/library/busybox:latest -> busybox), so
// callers may name local images in any normalized form. It also accepts
// "oci-layout://STORE/NAME@DIGEST" values (the image's name after the store id, for the
// reader) and rewrites them to BuildKit's "oci-layout://STORE@DIGEST".
func AliasNamedContexts(attrs map[string]string) {
	for k, v := range maps.Clone(attrs) {
		name, ok := strings.CutPrefix(k, "context:")
		if !ok {
			continue
		}
		if rest, ok := strings.CutPrefix(v, "oci-layout://"); ok {
			if store, after, ok := strings.Cut(rest, "/"); ok {
				if _, dg, ok := strings.Cut(after, "@"); ok {
					v = "oci-layout://" + store + "@" + dg
					attrs[k] = v
				}
			}
		}
		if strings.Contains(name, "::") {
			continue
		}
		named, err := reference.ParseNormalizedNamed(name)
		if err != nil {
			continue
		}
		short := strings.TrimSuffix(reference.FamiliarString(named), ":latest")
		if _, exists := attrs["context:"+short]; !exists {
			attrs["context:"+short] = v
		}
	}
}

// gatewayImages resolves FROM images through named contexts, then the engine's resolver.
type gatewayImages struct {
	bc        *dockerui.Client
	c         gwclient.Client
	localOnly bool
}

func (g *gatewayImages) Image(ctx context.Context, ref string, platform ocispecs.Platform) (*Image, error) {
	var dg digest.Digest
	nc, err := g.bc.NamedContext(ref, dockerui.ContextOpt{
		Platform:      &platform,
		ResolveMode:   g.bc.ImageResolveMode.String(),
		CaptureDigest: &dg,
	})
	if err != nil {
		return nil, err
	}
	if nc != nil {
		st, img, err := nc.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("local image: %w", err)
		}
		if st != nil {
			return &Image{State: *st, Config: img, Digest: dg}, nil
		}
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference: %w", err)
	}
	if g.localOnly {
		return nil, errors.New("not in the local store, and --pull never forbids pulling it: pull or build it first")
	}
	named = reference.TagNameOnly(named)
	_, dg, data, err := g.c.ResolveImageConfig(ctx, named.String(), sourceresolver.Opt{
		LogName: "[internal] load metadata for " + named.String(),
		ImageOpt: &sourceresolver.ResolveImageOpt{
			Platform:    &platform,
			ResolveMode: g.bc.ImageResolveMode.String(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("not in the local store and not pullable (%v): pull or build it first", err)
	}
	var img dockerspec.DockerOCIImage
	if err := json.Unmarshal(data, &img); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	pinned := named.String()
	if dg != "" {
		if d, err := reference.WithDigest(named, dg); err == nil {
			pinned = d.String()
		}
	}
	st := llb.Image(pinned, llb.Platform(platform), llb.WithCustomName("[internal] load "+named.String()))
	st, err = st.WithImageConfig(data)
	if err != nil {
		return nil, err
	}
	return &Image{State: st, Config: &img, Digest: dg}, nil
}

// detach returns err located in the Kubefile, as a new error that keeps BuildKit's source
// details but not its gRPC status: BuildKit would send the status's message back to the
// client instead of ours.
func detach(err error) error {
	located := Locate(err)
	if located == err {
		return err
	}
	out := errors.New(located.Error())
	if srcs := errdefs.Sources(err); len(srcs) > 0 {
		return errdefs.WithSource(out, srcs[0])
	}
	return out
}
