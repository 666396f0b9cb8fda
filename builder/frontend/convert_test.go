package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cluster-image/sealos/builder/kubefile"
	"github.com/cluster-image/sealos/imagespec"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/solver/pb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var amd64 = ocispecs.Platform{OS: "linux", Architecture: "amd64"}

// graph is a marshalled LLB definition, decoded for assertions.
type graph struct {
	ops   map[digest.Digest]*pb.Op
	names map[digest.Digest]string
	order []digest.Digest
	def   *llb.Definition
}

func marshal(t *testing.T, st llb.State) *graph {
	t.Helper()
	def, err := st.Marshal(context.Background(), llb.Platform(amd64))
	require.NoError(t, err)
	g := &graph{ops: map[digest.Digest]*pb.Op{}, names: map[digest.Digest]string{}, def: def}
	for _, dt := range def.Def {
		var op pb.Op
		require.NoError(t, op.UnmarshalVT(dt))
		dg := digest.FromBytes(dt)
		g.ops[dg] = &op
		g.order = append(g.order, dg)
		if m, ok := def.Metadata[dg]; ok {
			g.names[dg] = m.Description["llb.customname"]
		}
	}
	return g
}

func (g *graph) execs() []*pb.ExecOp {
	var out []*pb.ExecOp
	for _, d := range g.order {
		if e := g.ops[d].GetExec(); e != nil {
			out = append(out, e)
		}
	}
	return out
}

func (g *graph) copies() []*pb.FileActionCopy {
	var out []*pb.FileActionCopy
	for _, d := range g.order {
		if f := g.ops[d].GetFile(); f != nil {
			for _, a := range f.Actions {
				if c := a.GetCopy(); c != nil {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

func (g *graph) sources() []string {
	var out []string
	for _, d := range g.order {
		if s := g.ops[d].GetSource(); s != nil {
			out = append(out, s.Identifier)
		}
	}
	return out
}

func (g *graph) hasName(prefix string) bool {
	for _, n := range g.names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

// images is a fixed ImageSource: each ref is an llb.Image with the given config.
type images map[string]*dockerspec.DockerOCIImage

func (m images) Image(_ context.Context, ref string, p ocispecs.Platform) (*Image, error) {
	img, ok := m[ref]
	if !ok {
		return nil, fmt.Errorf("no such image %s", ref)
	}
	return &Image{State: llb.Image("docker.io/library/"+ref, llb.Platform(p)), Config: img, Digest: digest.FromString(ref)}, nil
}

func convert(t *testing.T, src string, opt ConvertOptions) (*Result, error) {
	t.Helper()
	f, err := kubefile.Parse("Kubefile", strings.NewReader(src))
	require.NoError(t, err)
	if opt.TargetPlatform == nil {
		opt.TargetPlatform = &amd64
	}
	if opt.BuildPlatform == nil {
		opt.BuildPlatform = &amd64
	}
	return Convert(context.Background(), f, opt)
}

var epoch = time.Unix(1700000000, 0).UTC()

func TestConvertApplicationImage(t *testing.T) {
	res, err := convert(t, `FROM scratch
LABEL org.opencontainers.image.title=demo sealos.io.type=application
ENV NS=demo
COPY charts charts
COPY manifests/ ./manifests/
WORKDIR /opt
COPY --chmod=0755 --chown=1000:1000 run.sh .
ENTRYPOINT ["bash"]
CMD ["run.sh", "$NS"]
`, ConvertOptions{SourceDateEpoch: &epoch, Labels: map[string]string{"extra": "yes"}})
	require.NoError(t, err)
	img := res.Image
	assert.Equal(t, imagespec.Application, res.Type)
	assert.Equal(t, []string{"NS=demo"}, img.Config.Env, "application images get no registry env")
	assert.Equal(t, []string{"bash"}, img.Config.Entrypoint)
	assert.Equal(t, []string{"run.sh", "$NS"}, img.Config.Cmd, "CMD is not expanded")
	assert.Equal(t, "/opt", img.Config.WorkingDir)
	assert.Equal(t, map[string]string{"org.opencontainers.image.title": "demo", "sealos.io.type": "application", "extra": "yes"}, img.Config.Labels)
	assert.Equal(t, "linux", img.OS)
	assert.Equal(t, "amd64", img.Architecture)
	require.NotNil(t, img.Created)
	assert.Equal(t, epoch, *img.Created)
	assert.Len(t, img.History, 8)
	assert.Equal(t, map[string]string{
		"org.opencontainers.image.created": "2023-11-14T22:13:20Z",
		"org.opencontainers.image.title":   "demo",
	}, res.Annotations)

	g := marshal(t, res.State)
	assert.Equal(t, []string{"local://context"}, g.sources())
	cps := g.copies()
	require.Len(t, cps, 3)
	assert.Equal(t, "/charts", cps[0].Src)
	assert.Equal(t, "/charts", cps[0].Dest)
	assert.Equal(t, "/manifests", cps[1].Src)
	assert.Equal(t, "/manifests/", cps[1].Dest)
	assert.Equal(t, "/run.sh", cps[2].Src)
	assert.Equal(t, "/opt/", cps[2].Dest, "relative to WORKDIR")
	assert.Equal(t, int32(0o755), cps[2].Mode)
	require.NotNil(t, cps[2].Owner)
	assert.Equal(t, uint32(1000), cps[2].Owner.User.GetByID())
	assert.True(t, cps[0].AllowWildcard)
	assert.Empty(t, g.execs(), "no RUN, no runc")
	assert.True(t, g.hasName("[stage-0 4/8] COPY manifests/ ./manifests/"), "%v", g.names)

	// The config is what goes to "containerimage.config": the outer Config must be set.
	dt, err := json.Marshal(img)
	require.NoError(t, err)
	var back ocispecs.Image
	require.NoError(t, json.Unmarshal(dt, &back))
	assert.Equal(t, []string{"bash"}, back.Config.Entrypoint)
	assert.Equal(t, "demo", back.Config.Labels["org.opencontainers.image.title"])
}

func TestConvertRootfsDefaultsAndValidation(t *testing.T) {
	res, err := convert(t, `FROM scratch
LABEL sealos.io.type=rootfs sealos.io.version=v1beta1
ENV registryPort=5001
COPY bin bin
CMD ["bash init.sh"]
`, ConvertOptions{})
	require.NoError(t, err)
	assert.Equal(t, imagespec.Rootfs, res.Type)
	assert.Equal(t, []string{
		"registryPort=5001",
		"registryData=/var/lib/registry",
		"registryDomain=sealos.hub",
		"registryUsername=admin",
	}, res.Image.Config.Env, "the Kubefile's value wins over the default")

	assert.Empty(t, res.Warnings)
}

// Labels are never refused at build time (sealos builds whatever they say); what sealos
// would run differently, or refuse to run, is a warning naming the LABEL line.
func TestConvertLabelWarnings(t *testing.T) {
	cases := []struct {
		name, kubefile string
		typ            imagespec.Type
		warnings       []string
	}{
		{"rootfs without version", "FROM scratch\nCOPY a b\nLABEL sealos.io.type=rootfs\n", imagespec.Rootfs,
			[]string{"Kubefile:3: LABEL: a rootfs image needs the label sealos.io.version=v1beta1 (or v1beta2); 'sealos run' refuses such an image"}},
		{"addons type", "FROM scratch\nLABEL sealos.io.type=addons\n", imagespec.Application,
			[]string{`Kubefile:2: LABEL: sealos.io.type "addons" is not one of rootfs, application, patch: the image is run as an application (on the first master only)`}},
		{"empty type", "FROM scratch\nLABEL sealos.io.type=\"\"\n", imagespec.Application, nil},
		{"older type label", "FROM scratch\nLABEL apps.sealos.io/type=rootfs apps.sealos.io/version=v1beta1\nENV registryPort=5001\n", imagespec.Rootfs, nil},
		{"unknown version on a patch", "FROM scratch\nLABEL sealos.io.type=patch\nLABEL sealos.io.version=v9\n", imagespec.Patch,
			[]string{`Kubefile:3: LABEL: sealos.io.version "v9" is not one of v1beta1, v1beta2 (it is read only on rootfs images)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := convert(t, c.kubefile, ConvertOptions{})
			require.NoError(t, err)
			assert.Equal(t, c.typ, res.Type)
			assert.Equal(t, c.warnings, res.Warnings)
			if c.typ == imagespec.Rootfs {
				assert.Contains(t, res.Image.Config.Env, "registryDomain=sealos.hub", "a rootfs image gets the registry defaults, whichever label says so")
			}
		})
	}
}

func TestConvertRunMultiStageAndArgs(t *testing.T) {
	base := &dockerspec.DockerOCIImage{}
	base.Config.Env = []string{"PATH=/bin", "FROM_BASE=1"}
	base.Config.Cmd = []string{"sh"}
	base.Config.Labels = map[string]string{"base": "label"}
	res, err := convert(t, `ARG BASE=busybox
ARG VERSION=1.0
FROM ${BASE} AS build
ARG VERSION
ARG SECRET=default
ENV OUT=/out
WORKDIR /work
USER 1000
RUN echo $VERSION > $OUT
RUN ["/bin/sh", "-c", "true"]
FROM scratch
ARG DEST=/dest
COPY --from=build /out ${DEST}/version
COPY --from=0 /bin/busybox /bin/
`, ConvertOptions{BuildArgs: map[string]string{"SECRET": "given", "UNUSED": "x", "SOURCE_DATE_EPOCH": "1", "BUILDKIT_INLINE_CACHE": "1"}, Images: images{"busybox": base}})
	require.NoError(t, err)
	assert.Equal(t, []string{"UNUSED"}, res.UnusedBuildArgs)
	assert.Empty(t, res.Image.Config.Env, "a scratch stage inherits nothing")
	assert.Empty(t, res.Annotations[ocispecs.AnnotationBaseImageName], "the target stage is FROM scratch")

	g := marshal(t, res.State)
	assert.Contains(t, g.sources(), "docker-image://docker.io/library/busybox:latest")
	ex := g.execs()
	require.Len(t, ex, 2)
	run := ex[0].Meta
	assert.Equal(t, []string{"/bin/sh", "-c", "echo $VERSION > $OUT"}, run.Args)
	assert.Equal(t, "/work", run.Cwd)
	assert.Equal(t, "1000", run.User)
	assert.Subset(t, run.Env, []string{"PATH=/bin", "FROM_BASE=1", "OUT=/out", "VERSION=1.0", "SECRET=given"})
	assert.Equal(t, []string{"/bin/sh", "-c", "true"}, ex[1].Meta.Args)

	cps := g.copies()
	require.Len(t, cps, 2)
	assert.Equal(t, "/out", cps[0].Src)
	assert.Equal(t, "/dest/version", cps[0].Dest)
	assert.Equal(t, "/bin/busybox", cps[1].Src)

	// The build stage as target keeps the base config, and its ARGs stay out of the image.
	res, err = convert(t, `FROM busybox AS build
ARG V=1
ENV E=$V
ENTRYPOINT ["x"]
FROM scratch
`, ConvertOptions{Target: "build", Images: images{"busybox": base}})
	require.NoError(t, err)
	assert.Equal(t, []string{"PATH=/bin", "FROM_BASE=1", "E=1"}, res.Image.Config.Env)
	assert.Nil(t, res.Image.Config.Cmd, "ENTRYPOINT clears an inherited CMD")
	assert.Equal(t, "label", res.Image.Config.Labels["base"])
	assert.Equal(t, "busybox", res.Annotations[ocispecs.AnnotationBaseImageName])
	assert.Equal(t, digest.FromString("busybox").String(), res.Annotations[ocispecs.AnnotationBaseImageDigest])
}

func TestConvertHeredocsShellAndNetwork(t *testing.T) {
	res, err := convert(t, `FROM scratch
ARG WHO=world
COPY <<EOF /etc/greeting
hello $WHO
EOF
SHELL ["/bin/bash", "-eu", "-c"]
RUN --network=none <<EOF
echo one
echo two
EOF
RUN cat <<A > /x
a
A
RUN <<EOF
#!/bin/busybox sh
echo script
EOF
CMD echo shell form
`, ConvertOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"/bin/bash", "-eu", "-c", "echo shell form"}, res.Image.Config.Cmd)
	assert.Equal(t, []string{"/bin/bash", "-eu", "-c"}, res.Image.Config.Shell)
	g := marshal(t, res.State)
	ex := g.execs()
	require.Len(t, ex, 3)
	assert.Equal(t, []string{"/bin/bash", "-eu", "-c", "echo one\necho two\n"}, ex[0].Meta.Args)
	assert.Equal(t, pb.NetMode_NONE, ex[0].Network)
	assert.Equal(t, []string{"/bin/bash", "-eu", "-c", "cat <<A > /x\na\nA"}, ex[1].Meta.Args)
	assert.Equal(t, []string{"/dev/pipes/EOF"}, ex[2].Meta.Args, "a script with #! runs as it is")
	assert.Contains(t, ex[0].Meta.Env, "PATH="+DefaultPath, "RUN gets a PATH even on scratch")
	assert.NotContains(t, res.Image.Config.Env, "PATH="+DefaultPath, "but the image does not")

	found := false
	for _, d := range g.order {
		if f := g.ops[d].GetFile(); f != nil {
			for _, a := range f.Actions {
				if mk := a.GetMkfile(); mk != nil && mk.Path == "/EOF" && string(mk.Data) == "hello world\n" {
					found = true
				}
			}
		}
	}
	assert.True(t, found, "the COPY heredoc is expanded with the ARG")
}

func TestConvertReproducible(t *testing.T) {
	src := "FROM scratch\nCOPY . /\nRUN touch /x\nLABEL a=b\n"
	var defs [][]byte
	var cfgs [][]byte
	for range 2 {
		bctx := llb.Local("context", llb.LocalUniqueID("fixed"))
		res, err := convert(t, src, ConvertOptions{SourceDateEpoch: &epoch, Context: &bctx})
		require.NoError(t, err)
		def, err := res.State.Marshal(context.Background(), llb.Platform(amd64))
		require.NoError(t, err)
		defs = append(defs, bytes.Join(def.Def, nil))
		cfg, err := json.Marshal(res.Image)
		require.NoError(t, err)
		cfgs = append(cfgs, cfg)
	}
	assert.Equal(t, defs[0], defs[1])
	assert.Equal(t, string(cfgs[0]), string(cfgs[1]))

	// Without an epoch, the created time is the clock's.
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	res, err := convert(t, src, ConvertOptions{Now: func() time.Time { return now }})
	require.NoError(t, err)
	assert.Equal(t, now, *res.Image.Created)
}

func TestConvertLinkAndAdd(t *testing.T) {
	res, err := convert(t, `FROM scratch
COPY base /
COPY --link --exclude=*.md docs /docs
ADD files.tar.gz /opt/
ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.com/x/tool.bin /bin/
`, ConvertOptions{})
	require.NoError(t, err)
	g := marshal(t, res.State)
	merges := 0
	for _, d := range g.order {
		if g.ops[d].GetMerge() != nil {
			merges++
		}
	}
	assert.Equal(t, 1, merges, "--link copies into its own layer and merges it")
	cps := g.copies()
	require.Len(t, cps, 4)
	assert.Equal(t, []string{"*.md"}, cps[1].ExcludePatterns)
	assert.True(t, cps[2].AttemptUnpackDockerCompatibility, "ADD unpacks local archives")
	assert.Equal(t, "/tool.bin", cps[3].Src)
	assert.Contains(t, g.sources(), "https://example.com/x/tool.bin")
}

func TestConvertErrors(t *testing.T) {
	cases := []struct {
		name, src string
		opt       ConvertOptions
		want      string
	}{
		{"copy from later stage", "FROM scratch AS a\nCOPY --from=b x y\nFROM scratch AS b\n", ConvertOptions{Target: "a"}, "Kubefile:2: COPY: --from=b names a later stage: a stage can only copy from the stages before it"},
		{"copy from unknown, no images", "FROM scratch\nCOPY --from=nothere x y\n", ConvertOptions{}, "Kubefile:2: COPY: --from=nothere: no stage has this name, and this build has no image source"},
		{"copy from missing image", "FROM scratch\nCOPY --from=nothere x y\n", ConvertOptions{Images: images{}}, "Kubefile:2: COPY: --from=nothere: not a stage, and the image cannot be used: no such image nothere"},
		{"from image, no images", "FROM scratch\nFROM busybox\n", ConvertOptions{}, `Kubefile:2: FROM: image "busybox": no image source in this build (only scratch and stages)`},
		{"from missing image", "FROM busybox\n", ConvertOptions{Images: images{}}, `Kubefile:1: FROM: image "busybox": no such image busybox`},
		{"bad platform", "FROM --platform=nope/x/y/z scratch\n", ConvertOptions{}, `Kubefile:1: FROM: invalid --platform "nope/x/y/z"`},
		{"bad chmod", "FROM scratch\nCOPY --chmod=999 a b\n", ConvertOptions{}, "Kubefile:2: COPY: invalid --chmod=999: use an octal mode such as 0755, or a symbolic one such as u+x"},
		{"copy url", "FROM scratch\nCOPY http://x/y /z\n", ConvertOptions{}, "Kubefile:2: COPY: source http://x/y is a URL: COPY takes files from the context, use ADD to download"},
		{"checksum local", "FROM scratch\nADD --checksum=sha256:00 a b\n", ConvertOptions{}, "Kubefile:2: ADD: --checksum needs exactly one http(s) source"},
		{"bad port", "FROM scratch\nEXPOSE http\n", ConvertOptions{}, `Kubefile:2: EXPOSE: invalid port "http": use PORT[/tcp|udp|sctp]`},
		{"unknown target", "FROM scratch AS a\n", ConvertOptions{Target: "b"}, `Kubefile: target stage "b" not found: stages are a`},
		{"expansion error", "FROM scratch\nARG X\nWORKDIR ${X:?X is required}\n", ConvertOptions{}, "Kubefile:3: WORKDIR: "},
		{"empty from", "ARG B\nFROM ${B}\n", ConvertOptions{}, `Kubefile:2: FROM: image "${B}" expands to an empty name`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := convert(t, c.src, c.opt)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), c.want), "got %q\nwant prefix %q", err.Error(), c.want)
		})
	}
}

func TestArgEnvPrecedence(t *testing.T) {
	base := &dockerspec.DockerOCIImage{}
	base.Config.Env = []string{"FROM_BASE=base"}
	res, err := convert(t, `FROM img
ARG FROM_BASE=arg
ARG V=default
ARG GIVEN=default
LABEL a=$FROM_BASE v=$V given=$GIVEN
ENV V=env
LABEL v2=$V
RUN echo
`, ConvertOptions{Images: images{"img": base}, BuildArgs: map[string]string{"GIVEN": "flag"}})
	require.NoError(t, err)
	l := res.Image.Config.Labels
	assert.Equal(t, "base", l["a"], "an inherited ENV wins over an ARG")
	assert.Equal(t, "default", l["v"])
	assert.Equal(t, "flag", l["given"], "--build-arg wins over the default")
	assert.Equal(t, "env", l["v2"], "ENV hides the ARG")
	run := marshal(t, res.State).execs()[0].Meta.Env
	assert.Contains(t, run, "V=env")
	assert.Contains(t, run, "GIVEN=flag")
	assert.Contains(t, run, "FROM_BASE=base")
	assert.NotContains(t, run, "FROM_BASE=arg")
}

func TestPredefinedPlatformArgs(t *testing.T) {
	arm := ocispecs.Platform{OS: "linux", Architecture: "arm64"}
	res, err := convert(t, "ARG TARGETARCH\nFROM scratch\nARG TARGETARCH\nARG BUILDARCH\nLABEL arch=$TARGETARCH build=$BUILDARCH\n", ConvertOptions{TargetPlatform: &arm})
	require.NoError(t, err)
	assert.Equal(t, "arm64", res.Image.Config.Labels["arch"])
	assert.Equal(t, "amd64", res.Image.Config.Labels["build"])
	assert.Equal(t, "arm64", res.Image.Architecture)
}

func TestAliasNamedContexts(t *testing.T) {
	attrs := map[string]string{
		"context:docker.io/library/busybox:latest": "oci-layout://store@sha256:1",
		"context:localhost:5000/app:v1":            "oci-layout://store@sha256:2",
		"context:kept":                             "x",
		"context:docker.io/library/kept:latest":    "y",
		"filename":                                 "Kubefile",
	}
	AliasNamedContexts(attrs)
	assert.Equal(t, "oci-layout://store@sha256:1", attrs["context:busybox"])
	assert.Equal(t, "oci-layout://store@sha256:2", attrs["context:localhost:5000/app:v1"])
	assert.Equal(t, "x", attrs["context:kept"], "an explicit short name is not replaced")

	attrs = map[string]string{"context:docker.io/library/base:v1": "oci-layout://sealos-store/docker.io/library/base:v1@sha256:3"}
	AliasNamedContexts(attrs)
	assert.Equal(t, "oci-layout://sealos-store@sha256:3", attrs["context:base:v1"])
	assert.Equal(t, "oci-layout://sealos-store@sha256:3", attrs["context:docker.io/library/base:v1"])
}

func TestParseEpoch(t *testing.T) {
	e, err := ParseEpoch("")
	require.NoError(t, err)
	assert.Nil(t, e)
	e, err = ParseEpoch("1700000000")
	require.NoError(t, err)
	assert.Equal(t, epoch, *e)
	_, err = ParseEpoch("yesterday")
	assert.ErrorContains(t, err, `invalid SOURCE_DATE_EPOCH "yesterday"`)
}

func TestSourceLocations(t *testing.T) {
	f, err := kubefile.Parse("Kubefile", strings.NewReader("FROM scratch\nENV A=1\nCOPY a \\\n  /b\nRUN exit 3\n"))
	require.NoError(t, err)
	res, err := Convert(context.Background(), f, ConvertOptions{TargetPlatform: &amd64, BuildPlatform: &amd64})
	require.NoError(t, err)
	def, err := res.State.Marshal(context.Background(), llb.Platform(amd64))
	require.NoError(t, err)
	pbdef := def.ToPB()
	require.NotNil(t, pbdef.Source)
	require.Len(t, pbdef.Source.Infos, 1)
	assert.Equal(t, "Kubefile", pbdef.Source.Infos[0].Filename)
	var lines []int32
	for _, locs := range pbdef.Source.Locations {
		for _, l := range locs.Locations {
			lines = append(lines, l.Ranges[0].Start.Line, l.Ranges[0].End.Line)
		}
	}
	assert.ElementsMatch(t, []int32{3, 4, 5, 5}, lines, "COPY spans lines 3-4, RUN line 5")

	// An error BuildKit located at line 5 names the RUN.
	solveErr := errdefs.WithSource(fmt.Errorf(`process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`),
		&errdefs.Source{Info: &pb.SourceInfo{Filename: "Kubefile", Data: f.Source}, Ranges: []*pb.Range{{Start: &pb.Position{Line: 5}, End: &pb.Position{Line: 5}}}})
	err = Locate(fmt.Errorf("failed to solve: %w", solveErr))
	assert.EqualError(t, err, `Kubefile:5: RUN: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`)
	var le *LocatedError
	require.ErrorAs(t, err, &le)
	assert.Len(t, errdefs.Sources(err), 1, "BuildKit's details are kept")
	plain := fmt.Errorf("boom")
	assert.Equal(t, plain, Locate(plain))
	assert.Equal(t, err, Locate(err), "located once")
}
