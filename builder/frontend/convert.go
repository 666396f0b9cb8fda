// Package frontend turns a parsed Kubefile into BuildKit LLB and an image config.
//
// Convert is the pure part: it needs no daemon, only an ImageSource for FROM images, and
// returns the LLB state of the target stage with its image config and manifest
// annotations. BuildFunc wraps it as a gateway client.BuildFunc that reads the Kubefile and
// the build options from the frontend attributes (the same ones as BuildKit's Dockerfile
// frontend: filename, build-arg:*, label:*, target, platform, context:*, no-cache), so it
// runs in-process through client.Build, or as a gateway frontend.
//
// Typical use by `sealos build`:
//
//	f, err := kubefile.ParseFile(path)          // parse errors early, with file:line
//	res, err := engine.Build(ctx, buildkit.BuildOptions{..., Frontend: frontend.BuildFunc(frontend.Options{File: f})})
//	if err != nil {
//		return frontend.Locate(err)            // "Kubefile:5: RUN: process ... exit code: 3"
//	}
package frontend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cluster-image/sealos/builder/kubefile"
	"github.com/cluster-image/sealos/imagespec"
	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImageSource resolves the images a Kubefile names in FROM and COPY --from.
type ImageSource interface {
	// Image returns the image ref for platform. ref is the reference as written in the
	// Kubefile after ARG expansion, never "scratch" or a stage name.
	Image(ctx context.Context, ref string, platform ocispecs.Platform) (*Image, error)
}

// Image is a resolved base image.
type Image struct {
	// State is its root filesystem.
	State llb.State
	// Config is its config, or nil when it has none.
	Config *dockerspec.DockerOCIImage
	// Digest is its manifest digest, when known.
	Digest digest.Digest
}

// ConvertOptions are the inputs of a conversion besides the Kubefile.
type ConvertOptions struct {
	// BuildArgs are the --build-arg values; they set ARGs the Kubefile declares.
	BuildArgs map[string]string
	// Labels are extra labels (--label); they win over the Kubefile's.
	Labels map[string]string
	// Annotations are extra manifest annotations.
	Annotations map[string]string
	// Target is the stage to build; "" means the last one.
	Target string
	// TargetPlatform is the platform of the image; nil means BuildPlatform.
	TargetPlatform *ocispecs.Platform
	// BuildPlatform is the platform of the builder; nil means this host's.
	BuildPlatform *ocispecs.Platform
	// Context is the build context; nil means llb.Local("context").
	Context *llb.State
	// ContextPath, when set, is the context's path p alone, transferred by itself: a COPY
	// of p then neither waits for nor stores the rest of the context. OwnTransfer says for
	// which COPY sources the caller checked that the context holds them as plain files or
	// directories (no symlink on the way, which only the whole context resolves).
	ContextPath func(p string) llb.State
	OwnTransfer func(p string) bool
	// Images resolves FROM and COPY --from images; nil allows only scratch and stages.
	Images ImageSource
	// SourceDateEpoch, when set, is the image's created time (and its history's), for
	// reproducible digests. Otherwise Now is used.
	SourceDateEpoch *time.Time
	// Now returns the created time when SourceDateEpoch is nil; nil means time.Now.
	Now func() time.Time
	// NoCache makes every step run again.
	NoCache bool
}

// Result is a converted Kubefile.
type Result struct {
	// State is the root filesystem of the target stage.
	State llb.State
	// Image is the image config: set it as "containerimage.config".
	Image dockerspec.DockerOCIImage
	// Annotations are the manifest annotations (org.opencontainers.image.*, and those given).
	Annotations map[string]string
	// Type is the cluster-image type the labels declare.
	Type imagespec.Type
	// Platform is the platform of the target stage.
	Platform ocispecs.Platform
	// UnusedBuildArgs are build args no ARG declared, sorted, for a warning.
	UnusedBuildArgs []string
	// Warnings are about the labels (imagespec.Check), each naming the Kubefile line.
	Warnings []string
}

// DefaultShell runs shell-form RUN, CMD and ENTRYPOINT until a SHELL instruction says otherwise.
var DefaultShell = []string{"/bin/sh", "-c"}

// DefaultPath is the PATH RUN gets when the image sets none; it is not written to the config.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Convert turns f into LLB and an image config. It does not talk to a daemon except through
// opt.Images. Errors name the Kubefile, the line and the instruction.
func Convert(ctx context.Context, f *kubefile.File, opt ConvertOptions) (*Result, error) {
	c, err := newConverter(f, opt)
	if err != nil {
		return nil, err
	}
	target, err := f.Target(opt.Target)
	if err != nil {
		return nil, err
	}
	st, err := c.stage(ctx, target.Index)
	if err != nil {
		return nil, err
	}
	img := clone(st.img)
	created := c.created()
	img.Created = &created
	if img.Config.Labels == nil && len(opt.Labels) > 0 {
		img.Config.Labels = map[string]string{}
	}
	for k, v := range opt.Labels {
		img.Config.Labels[k] = v
	}
	typ, warnings := Finish(&img, func(label string) string {
		if l, ok := st.labelLoc[label]; ok {
			return l.String() + ": LABEL"
		}
		return f.Name
	})
	res := &Result{
		State:       st.fs,
		Image:       img,
		Type:        typ,
		Warnings:    warnings,
		Platform:    st.platform,
		Annotations: Annotations(img, st.baseName, st.baseDigest, opt.Annotations),
	}
	for k := range opt.BuildArgs {
		// SOURCE_DATE_EPOCH and BuildKit's own BUILDKIT_* args mean something without an ARG.
		if !c.usedArgs[k] && k != "SOURCE_DATE_EPOCH" && !strings.HasPrefix(k, "BUILDKIT_") {
			res.UnusedBuildArgs = append(res.UnusedBuildArgs, k)
		}
	}
	sort.Strings(res.UnusedBuildArgs)
	return res, nil
}

// Finish applies the cluster-image contract to a finished image config: rootfs images get
// the registry env defaults (imagespec.EnvWithDefaults). Labels are never refused (sealos
// builds any); the warnings of imagespec.Check come back, each prefixed by where(label),
// the place of the label for messages.
func Finish(img *dockerspec.DockerOCIImage, where func(label string) string) (imagespec.Type, []string) {
	labels := img.Config.Labels
	var warnings []string
	for _, w := range imagespec.Check(labels) {
		warnings = append(warnings, where(w.Label)+": "+w.Message)
	}
	typ := imagespec.TypeOf(labels)
	img.Config.Env = imagespec.EnvWithDefaults(typ, img.Config.Env)
	return typ, warnings
}

// Annotations returns the manifest annotations of an image: the OCI ones (created, and
// base.name/base.digest when built FROM an image), every org.opencontainers.image.* label,
// and extra on top.
func Annotations(img dockerspec.DockerOCIImage, baseName string, baseDigest digest.Digest, extra map[string]string) map[string]string {
	a := map[string]string{}
	if img.Created != nil {
		a[ocispecs.AnnotationCreated] = img.Created.UTC().Format(time.RFC3339)
	}
	if baseName != "" {
		a[ocispecs.AnnotationBaseImageName] = baseName
		if baseDigest != "" {
			a[ocispecs.AnnotationBaseImageDigest] = baseDigest.String()
		}
	}
	for k, v := range img.Config.Labels {
		if strings.HasPrefix(k, "org.opencontainers.image.") {
			a[k] = v
		}
	}
	maps.Copy(a, extra)
	return a
}

type converter struct {
	f        *kubefile.File
	srcmap   *llb.SourceMap
	opt      ConvertOptions
	exp      kubefile.Expander
	meta     map[string]string
	target   ocispecs.Platform
	build    ocispecs.Platform
	context  llb.State
	stages   []*stageState
	busy     map[int]bool
	usedArgs map[string]bool
}

// stageState is a stage while it is being converted.
type stageState struct {
	stage      *kubefile.Stage
	fs         llb.State
	img        dockerspec.DockerOCIImage
	platform   ocispecs.Platform
	args       map[string]string // ARGs in scope with a value
	shell      []string
	cmdSet     bool
	labelLoc   map[string]kubefile.Location
	baseName   string
	baseDigest digest.Digest
	step       int
}

func newConverter(f *kubefile.File, opt ConvertOptions) (*converter, error) {
	c := &converter{f: f, opt: opt, exp: f.NewExpander(), busy: map[int]bool{}, usedArgs: map[string]bool{}}
	if len(f.Source) > 0 {
		c.srcmap = llb.NewSourceMap(nil, f.Name, "Dockerfile", f.Source)
	}
	c.build = platforms.Normalize(platforms.DefaultSpec())
	if opt.BuildPlatform != nil {
		c.build = platforms.Normalize(*opt.BuildPlatform)
	}
	c.target = c.build
	if opt.TargetPlatform != nil {
		c.target = platforms.Normalize(*opt.TargetPlatform)
	}
	if opt.Context != nil {
		c.context = *opt.Context
	} else {
		c.context = llb.Local("context", llb.SharedKeyHint("context"), llb.WithCustomName("[internal] load build context"))
	}
	for _, a := range f.MetaArgs {
		for _, kv := range a.Args {
			if _, ok := opt.BuildArgs[kv.Key]; ok {
				c.usedArgs[kv.Key] = true
			}
		}
	}
	meta, err := f.ResolveMetaArgs(opt.BuildArgs, platformArgs(c.build, c.target))
	if err != nil {
		return nil, err
	}
	c.meta = meta
	c.stages = make([]*stageState, len(f.Stages))
	return c, nil
}

// platformArgs are the ARGs BuildKit predefines in the global scope.
func platformArgs(build, target ocispecs.Platform) map[string]string {
	return map[string]string{
		"BUILDPLATFORM":  platforms.Format(build),
		"BUILDOS":        build.OS,
		"BUILDARCH":      build.Architecture,
		"BUILDVARIANT":   build.Variant,
		"TARGETPLATFORM": platforms.Format(target),
		"TARGETOS":       target.OS,
		"TARGETARCH":     target.Architecture,
		"TARGETVARIANT":  target.Variant,
	}
}

func (c *converter) created() time.Time {
	if c.opt.SourceDateEpoch != nil {
		return c.opt.SourceDateEpoch.UTC()
	}
	if c.opt.Now != nil {
		return c.opt.Now().UTC()
	}
	return time.Now().UTC()
}

func (c *converter) constraints(st *stageState, cmd kubefile.Command) []llb.ConstraintsOpt {
	name := cmd.Loc().Text
	if name == "" {
		name = cmd.Instruction()
	}
	label := st.stage.Name
	if label == "" {
		label = "stage-" + strconv.Itoa(st.stage.Index)
	}
	opts := []llb.ConstraintsOpt{
		llb.WithCustomName(fmt.Sprintf("[%s %d/%d] %s", label, st.step, len(st.stage.Commands), name)),
		llb.Platform(st.platform),
	}
	if c.opt.NoCache {
		opts = append(opts, llb.IgnoreCache)
	}
	if c.srcmap != nil {
		l := cmd.Loc()
		opts = append(opts, c.srcmap.Location([]*pb.Range{{
			Start: &pb.Position{Line: int32(l.Line)},
			End:   &pb.Position{Line: int32(max(l.EndLine, l.Line))},
		}}))
	}
	return opts
}

// stage converts stage i (once), converting the stages it depends on first.
func (c *converter) stage(ctx context.Context, i int) (*stageState, error) {
	if st := c.stages[i]; st != nil {
		return st, nil
	}
	s := c.f.Stages[i]
	if c.busy[i] {
		return nil, kubefile.StageErrorf(s, "stage %d depends on itself", i)
	}
	c.busy[i] = true
	defer delete(c.busy, i)

	st, err := c.from(ctx, s)
	if err != nil {
		return nil, err
	}
	for n, cmd := range s.Commands {
		st.step = n + 1
		if err := c.dispatch(ctx, st, cmd); err != nil {
			return nil, err
		}
	}
	c.stages[i] = st
	return st, nil
}

func (c *converter) from(ctx context.Context, s *kubefile.Stage) (*stageState, error) {
	base, plat, err := c.f.BaseOf(s, c.meta)
	if err != nil {
		return nil, err
	}
	platform := c.target
	if plat != "" {
		p, err := platforms.Parse(plat)
		if err != nil {
			return nil, kubefile.StageErrorf(s, "invalid --platform %q: %v", plat, err)
		}
		platform = platforms.Normalize(p)
	}
	st := &stageState{
		stage:    s,
		platform: platform,
		args:     map[string]string{},
		shell:    DefaultShell,
		labelLoc: map[string]kubefile.Location{},
	}
	switch {
	case strings.EqualFold(base, "scratch"):
		st.fs = llb.Scratch().Platform(platform)
		st.img = emptyImage(platform)
	case c.f.StageByName(base, s.Index) != nil:
		dep, err := c.stage(ctx, c.f.StageByName(base, s.Index).Index)
		if err != nil {
			return nil, err
		}
		st.fs = dep.fs
		st.img = clone(dep.img)
		st.platform = dep.platform
		st.shell = slices.Clone(dep.shell)
		st.labelLoc = maps.Clone(dep.labelLoc)
		st.baseName, st.baseDigest = dep.baseName, dep.baseDigest
	default:
		if c.opt.Images == nil {
			return nil, kubefile.StageErrorf(s, "image %q: no image source in this build (only scratch and stages)", base)
		}
		im, err := c.opt.Images.Image(ctx, base, platform)
		if err != nil {
			return nil, kubefile.StageErrorf(s, "image %q: %v", base, err)
		}
		st.fs = im.State
		if im.Config != nil {
			st.img = clone(*im.Config)
			if len(st.img.Config.Shell) > 0 {
				st.shell = slices.Clone(st.img.Config.Shell)
			}
		} else {
			st.img = emptyImage(platform)
		}
		st.img.Created = nil
		st.baseName, st.baseDigest = base, im.Digest
	}
	if st.img.OS == "" {
		st.img.OS, st.img.Architecture, st.img.Variant = platform.OS, platform.Architecture, platform.Variant
	}
	return st, nil
}

// env is what $VARS expand to in a stage: its ARGs, then its ENV (ENV wins).
func (st *stageState) env() []string {
	out := kubefile.EnvList(st.args)
	return append(out, st.img.Config.Env...)
}

func (c *converter) dispatch(ctx context.Context, st *stageState, raw kubefile.Command) error {
	cmd, err := c.exp.Expand(raw, st.env())
	if err != nil {
		return err
	}
	switch cmd := cmd.(type) {
	case *kubefile.ArgCommand:
		for _, a := range cmd.Args {
			if v, ok := c.opt.BuildArgs[a.Key]; ok {
				c.usedArgs[a.Key] = true
				st.args[a.Key] = v
				continue
			}
			if a.Value != nil {
				st.args[a.Key] = *a.Value
				continue
			}
			if v, ok := c.meta[a.Key]; ok {
				st.args[a.Key] = v
			}
		}
		c.history(st, cmd, true)
	case *kubefile.EnvCommand:
		for _, kv := range cmd.Env {
			if kv.Key == "" {
				return kubefile.Errorf(cmd, "a name expands to nothing")
			}
			st.img.Config.Env = setEnv(st.img.Config.Env, kv.Key, kv.Value)
		}
		c.history(st, cmd, true)
	case *kubefile.LabelCommand:
		if st.img.Config.Labels == nil {
			st.img.Config.Labels = map[string]string{}
		}
		for _, kv := range cmd.Labels {
			if kv.Key == "" {
				return kubefile.Errorf(cmd, "a label name expands to nothing")
			}
			st.img.Config.Labels[kv.Key] = kv.Value
			st.labelLoc[kv.Key] = cmd.Loc()
		}
		c.history(st, cmd, true)
	case *kubefile.CopyCommand:
		return c.copy(ctx, st, cmd)
	case *kubefile.RunCommand:
		return c.run(st, cmd)
	case *kubefile.CmdCommand:
		st.img.Config.Cmd = c.withShell(st, cmd.Args, cmd.PrependShell)
		st.cmdSet = true
		c.history(st, cmd, true)
	case *kubefile.EntrypointCommand:
		st.img.Config.Entrypoint = c.withShell(st, cmd.Args, cmd.PrependShell)
		if !st.cmdSet {
			st.img.Config.Cmd = nil
		}
		c.history(st, cmd, true)
	case *kubefile.WorkdirCommand:
		wd := cmd.Path
		if !path.IsAbs(wd) {
			wd = path.Join("/", st.img.Config.WorkingDir, wd)
		}
		wd = path.Clean(wd)
		st.img.Config.WorkingDir = wd
		if wd != "/" {
			st.fs = st.fs.File(llb.Mkdir(wd, 0o755, llb.WithParents(true)), c.constraints(st, cmd)...)
		}
		c.history(st, cmd, wd == "/")
	case *kubefile.UserCommand:
		st.img.Config.User = cmd.User
		c.history(st, cmd, true)
	case *kubefile.ExposeCommand:
		if st.img.Config.ExposedPorts == nil {
			st.img.Config.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range cmd.Ports {
			port, proto, _ := strings.Cut(p, "/")
			if proto == "" {
				proto = "tcp"
			}
			if _, err := strconv.ParseUint(strings.Split(port, "-")[0], 10, 16); err != nil {
				return kubefile.Errorf(cmd, "invalid port %q: use PORT[/tcp|udp|sctp]", p)
			}
			st.img.Config.ExposedPorts[port+"/"+strings.ToLower(proto)] = struct{}{}
		}
		c.history(st, cmd, true)
	case *kubefile.VolumeCommand:
		if st.img.Config.Volumes == nil {
			st.img.Config.Volumes = map[string]struct{}{}
		}
		for _, v := range cmd.Volumes {
			if v == "" {
				return kubefile.Errorf(cmd, "a volume path expands to nothing")
			}
			st.img.Config.Volumes[v] = struct{}{}
		}
		c.history(st, cmd, true)
	case *kubefile.ShellCommand:
		st.shell = slices.Clone(cmd.Shell)
		st.img.Config.Shell = slices.Clone(cmd.Shell)
		c.history(st, cmd, true)
	case *kubefile.MaintainerCommand:
		st.img.Author = cmd.Maintainer
		c.history(st, cmd, true)
	case *kubefile.StopSignalCommand:
		st.img.Config.StopSignal = cmd.Signal
		c.history(st, cmd, true)
	default:
		return kubefile.Errorf(cmd, "not supported by this frontend")
	}
	return nil
}

func (c *converter) withShell(st *stageState, args []string, shell bool) []string {
	if !shell {
		return slices.Clone(args)
	}
	return append(slices.Clone(st.shell), args...)
}

func (c *converter) history(st *stageState, cmd kubefile.Command, empty bool) {
	created := c.created()
	text := cmd.Loc().Text
	if text == "" {
		text = cmd.Instruction()
	}
	st.img.History = append(st.img.History, ocispecs.History{
		Created:    &created,
		CreatedBy:  text,
		Comment:    "sealos.kubefile",
		EmptyLayer: empty,
	})
}

func (c *converter) run(st *stageState, cmd *kubefile.RunCommand) error {
	args := cmd.Args
	var opts []llb.RunOption
	if len(cmd.Heredocs) > 0 {
		if !cmd.PrependShell || len(args) != 1 {
			return kubefile.Errorf(cmd, "heredocs need the shell form")
		}
		if parser.MustParseHeredoc(args[0]) != nil && len(cmd.Heredocs) == 1 {
			data := cmd.Heredocs[0].Content
			if strings.HasPrefix(data, "#!") {
				// A script with its own interpreter: mount it and run it.
				name := cmd.Heredocs[0].Name
				script := llb.Scratch().File(llb.Mkfile("/"+name, 0o755, []byte(data)), llb.WithCustomName("[internal] preparing inline document"))
				opts = append(opts, llb.AddMount("/dev/pipes/", script, llb.SourcePath("/"), llb.Readonly))
				args = []string{"/dev/pipes/" + name}
				cmd = &kubefile.RunCommand{Location: cmd.Location, Args: args, Network: cmd.Network}
			} else {
				args = []string{data}
			}
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, h := range cmd.Heredocs {
				b.WriteString("\n" + h.Content + h.Name)
			}
			args = []string{b.String()}
		}
	}
	if cmd.PrependShell {
		args = append(slices.Clone(st.shell), args...)
	}
	opts = append(opts, llb.Args(args))
	env := slices.Clone(st.img.Config.Env)
	hasPath := false
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			hasPath = true
		}
	}
	if !hasPath {
		env = append([]string{"PATH=" + DefaultPath}, env...)
	}
	// ARGs are in RUN's environment but not in the image; ENV wins over an ARG.
	set := imagespec.EnvMap(env)
	for _, k := range sortedKeys(st.args) {
		if _, ok := set[k]; !ok {
			env = append(env, k+"="+st.args[k])
		}
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		opts = append(opts, llb.AddEnv(k, v))
	}
	wd := st.img.Config.WorkingDir
	if wd == "" {
		wd = "/"
	}
	opts = append(opts, llb.Dir(wd))
	if st.img.Config.User != "" {
		opts = append(opts, llb.User(st.img.Config.User))
	}
	switch cmd.Network {
	case "none":
		opts = append(opts, llb.Network(pb.NetMode_NONE))
	case "host":
		opts = append(opts, llb.Network(pb.NetMode_HOST))
	}
	for _, co := range c.constraints(st, cmd) {
		opts = append(opts, co)
	}
	st.fs = st.fs.Run(opts...).Root()
	c.history(st, cmd, false)
	return nil
}

func (c *converter) copy(ctx context.Context, st *stageState, cmd *kubefile.CopyCommand) error {
	src := c.context
	if cmd.From != "" {
		if dep := c.f.StageByName(cmd.From, st.stage.Index); dep != nil {
			ds, err := c.stage(ctx, dep.Index)
			if err != nil {
				return err
			}
			src = ds.fs
		} else if c.f.StageByName(cmd.From, len(c.f.Stages)) != nil {
			return kubefile.Errorf(cmd, "--from=%s names a later stage: a stage can only copy from the stages before it", cmd.From)
		} else {
			if c.opt.Images == nil {
				return kubefile.Errorf(cmd, "--from=%s: no stage has this name, and this build has no image source", cmd.From)
			}
			im, err := c.opt.Images.Image(ctx, cmd.From, st.platform)
			if err != nil {
				return kubefile.Errorf(cmd, "--from=%s: not a stage, and the image cannot be used: %v", cmd.From, err)
			}
			src = im.State
		}
	}

	dest := cmd.Dest
	if !path.IsAbs(dest) {
		wd := st.img.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		trailing := strings.HasSuffix(dest, "/") || dest == "." || dest == ""
		dest = path.Join(wd, dest)
		if trailing && !strings.HasSuffix(dest, "/") {
			dest += "/"
		}
	}

	var chmod *llb.ChmodOpt
	if cmd.Chmod != "" {
		chmod = &llb.ChmodOpt{}
		if m, err := strconv.ParseUint(cmd.Chmod, 8, 32); err == nil {
			if m > 0o7777 {
				return kubefile.Errorf(cmd, "invalid --chmod=%s: an octal mode is at most 7777", cmd.Chmod)
			}
			chmod.Mode = os.FileMode(m)
		} else if validSymbolicMode(cmd.Chmod) {
			chmod.ModeStr = cmd.Chmod
		} else {
			return kubefile.Errorf(cmd, "invalid --chmod=%s: use an octal mode such as 0755, or a symbolic one such as u+x", cmd.Chmod)
		}
	}
	var extra []llb.CopyOption
	if cmd.Chown != "" {
		extra = append(extra, llb.WithUser(cmd.Chown))
	}
	if cmd.Checksum != "" && (len(cmd.Sources) != 1 || !isURL(cmd.Sources[0].Path)) {
		return kubefile.Errorf(cmd, "--checksum needs exactly one http(s) source")
	}

	var action *llb.FileAction
	add := func(in llb.State, p string, info *llb.CopyInfo) {
		opts := append([]llb.CopyOption{info}, extra...)
		if action == nil {
			action = llb.Copy(in, p, dest, opts...)
		} else {
			action = action.Copy(in, p, dest, opts...)
		}
	}
	for _, s := range cmd.Sources {
		switch {
		case s.Heredoc != nil:
			doc := llb.Scratch().File(llb.Mkfile("/"+s.Heredoc.Name, 0o644, []byte(s.Heredoc.Content)),
				llb.WithCustomName("[internal] preparing inline document"), llb.Platform(st.platform))
			add(doc, "/"+s.Heredoc.Name, &llb.CopyInfo{Mode: chmod, CreateDestPath: true})
		case isURL(s.Path):
			if !cmd.Add {
				return kubefile.Errorf(cmd, "source %s is a URL: COPY takes files from the context, use ADD to download", s.Path)
			}
			if cmd.From != "" {
				return kubefile.Errorf(cmd, "a URL source cannot be used with --from")
			}
			name := "__unnamed__"
			if u, err := url.Parse(s.Path); err == nil {
				if b := path.Base(u.Path); b != "." && b != "/" {
					name = b
				}
			}
			hopts := []llb.HTTPOption{llb.Filename(name), llb.WithCustomName("ADD " + s.Path)}
			if cmd.Checksum != "" {
				dg, err := digest.Parse(cmd.Checksum)
				if err != nil {
					return kubefile.Errorf(cmd, "invalid --checksum %q: %v", cmd.Checksum, err)
				}
				hopts = append(hopts, llb.Checksum(dg))
			}
			add(llb.HTTP(s.Path, hopts...), name, &llb.CopyInfo{Mode: chmod, CreateDestPath: true})
		default:
			p := path.Clean("/" + s.Path)
			from := src
			if cmd.From == "" && c.opt.ContextPath != nil && c.opt.OwnTransfer != nil && c.opt.OwnTransfer(p) {
				from = c.opt.ContextPath(p) // only this path is transferred
			}
			add(from, p, &llb.CopyInfo{
				Mode:                chmod,
				FollowSymlinks:      true,
				CopyDirContentsOnly: true,
				AttemptUnpack:       cmd.Add,
				CreateDestPath:      true,
				AllowWildcard:       true,
				AllowEmptyWildcard:  true,
				ExcludePatterns:     cmd.Exclude,
			})
		}
	}
	opts := c.constraints(st, cmd)
	if cmd.Link && chmod == nil {
		// --link: the files land in a layer of their own, independent of what is below, so a
		// change of the base does not invalidate it.
		st.fs = llb.Merge([]llb.State{st.fs, llb.Scratch().File(action, opts...)}, opts...)
	} else {
		st.fs = st.fs.File(action, opts...)
	}
	c.history(st, cmd, false)
	return nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func validSymbolicMode(s string) bool {
	for _, clause := range strings.Split(s, ",") {
		i := 0
		for i < len(clause) && strings.ContainsRune("ugoa", rune(clause[i])) {
			i++
		}
		if i >= len(clause) || !strings.ContainsRune("+-=", rune(clause[i])) {
			return false
		}
		for _, r := range clause[i+1:] {
			if !strings.ContainsRune("rwxXst+-=", r) {
				return false
			}
		}
	}
	return s != ""
}

func setEnv(env []string, k, v string) []string {
	out := slices.Clone(env)
	for i, kv := range out {
		if key, _, _ := strings.Cut(kv, "="); key == k {
			out[i] = k + "=" + v
			return out
		}
	}
	return append(out, k+"="+v)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func emptyImage(p ocispecs.Platform) dockerspec.DockerOCIImage {
	var img dockerspec.DockerOCIImage
	img.OS, img.Architecture, img.Variant = p.OS, p.Architecture, p.Variant
	img.RootFS.Type = "layers"
	return img
}

func clone(src dockerspec.DockerOCIImage) dockerspec.DockerOCIImage {
	img := src
	img.Config.Env = slices.Clone(src.Config.Env)
	img.Config.Cmd = slices.Clone(src.Config.Cmd)
	img.Config.Entrypoint = slices.Clone(src.Config.Entrypoint)
	img.Config.ExposedPorts = maps.Clone(src.Config.ExposedPorts)
	img.Config.Volumes = maps.Clone(src.Config.Volumes)
	img.Config.Labels = maps.Clone(src.Config.Labels)
	img.Config.Shell = slices.Clone(src.Config.Shell)
	img.History = slices.Clone(src.History)
	img.RootFS.DiffIDs = slices.Clone(src.RootFS.DiffIDs)
	return img
}

// Locate names the Kubefile instruction a build error came from, when BuildKit attached
// its source location (every step of this frontend carries one): the result reads
// "Kubefile:5: RUN: process ... did not complete successfully". Errors without a location
// are returned as they are. It works on the error client.Build returns too, so callers of the
// engine can use it without the parsed Kubefile.
func Locate(err error) error {
	if err == nil {
		return nil
	}
	var le *LocatedError
	if errors.As(err, &le) {
		return err
	}
	for _, src := range errdefs.Sources(err) {
		if src.Info == nil || len(src.Ranges) == 0 || src.Ranges[0].Start == nil {
			continue
		}
		line := int(src.Ranges[0].Start.Line)
		instr := ""
		lines := strings.Split(string(src.Info.Data), "\n")
		if line >= 1 && line <= len(lines) {
			if w := strings.Fields(lines[line-1]); len(w) > 0 && slices.Contains(kubefile.Instructions, strings.ToUpper(w[0])) {
				instr = strings.ToUpper(w[0])
			}
		}
		return &LocatedError{Err: err, Loc: kubefile.Error{File: src.Info.Filename, Line: line, Instruction: instr, Msg: rootMessage(err)}}
	}
	return err
}

// LocatedError is a build error with the Kubefile place it came from. Error() is the
// place and BuildKit's message; Unwrap gives BuildKit's error with its details.
type LocatedError struct {
	Err error
	Loc kubefile.Error
}

func (e *LocatedError) Error() string { return e.Loc.Error() }
func (e *LocatedError) Unwrap() error { return e.Err }

var notFound = regexp.MustCompile(`^failed to compute cache key: failed to calculate checksum of ref [^ ]+: "(.*)": not found$`)

// rootMessage is the error text without the prefixes BuildKit's wrappers add, and with
// its "checksum of ref" message for a missing COPY source said plainly.
func rootMessage(err error) string {
	msg := err.Error()
	for {
		rest, ok := strings.CutPrefix(msg, "failed to solve: ")
		if !ok {
			break
		}
		msg = rest
	}
	if m := notFound.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%q: not found in the build context (or the --from stage or image); check the path and .dockerignore", m[1])
	}
	return msg
}
