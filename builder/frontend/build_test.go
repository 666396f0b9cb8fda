package frontend_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cluster-image/sealos/builder/buildkit"
	"github.com/cluster-image/sealos/builder/frontend"
	"github.com/cluster-image/sealos/store"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/testtool"
)

// These tests run the frontend through the real embedded BuildKit: the parts Convert's unit
// tests cannot see (reading the Kubefile from the session, the context, named contexts for
// local-store images, the exporter's view of config and annotations).

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testtool.Missing(t, "the embedded BuildKit needs root (CI runs as root)")
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
	}
}

func readJSON(t *testing.T, store string, dg digest.Digest, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(store, "blobs", dg.Algorithm().String(), dg.Encoded()))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

type built struct {
	desc     ocispecs.Descriptor
	manifest ocispecs.Manifest
	config   ocispecs.Image
	res      *buildkit.Result
	out      string
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	require.NoError(t, err)
	return s
}

func build(t *testing.T, e *buildkit.Engine, s *store.Store, ctxDir string, opt buildkit.BuildOptions) (*built, error) {
	t.Helper()
	var out bytes.Buffer
	opt.ContextDir = ctxDir
	if opt.File == "" {
		opt.File = filepath.Join(ctxDir, "Kubefile")
	}
	opt.Store = s
	if opt.Frontend == nil {
		opt.Frontend = frontend.Build
	}
	opt.Progress = "plain"
	opt.ProgressOut = &out
	res, err := e.Build(context.Background(), opt)
	if err != nil {
		return &built{out: out.String()}, err
	}
	b := &built{desc: res.Descriptor, res: res, out: out.String()}
	readJSON(t, s.Dir(), res.Descriptor.Digest, &b.manifest)
	readJSON(t, s.Dir(), b.manifest.Config.Digest, &b.config)
	return b, nil
}

func TestBuildThroughBuildKit(t *testing.T) {
	needRoot(t)
	e, err := buildkit.Connect(context.Background(), "", buildkit.DaemonOptions{Root: t.TempDir()}, nil)
	require.NoError(t, err)
	defer e.Close()
	images := openStore(t)

	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{
		"Kubefile": `ARG KIND=rootfs
FROM scratch
ARG KIND
LABEL sealos.io.type=${KIND} sealos.io.version=v1beta1 org.opencontainers.image.title=base
ENV registryPort=5050
COPY bin bin
COPY etc/ etc/
COPY <<EOF scripts/init.sh
echo init $KIND
EOF
CMD ["bash scripts/init.sh"]
`,
		"bin/tool":              "tool",
		"etc/registry.yml.tmpl": "port: {{ .registryPort }}\n",
		"ignored.log":           "not sent",
		".dockerignore":         "*.log\n",
	})
	base, err := build(t, e, images, ctxDir, buildkit.BuildOptions{
		Tags:      []string{"docker.io/library/base:v1"},
		BuildArgs: map[string]string{"SOURCE_DATE_EPOCH": "1700000000", "NOT_DECLARED": "x"},
	})
	require.NoError(t, err, base.out)
	cfg := base.config.Config
	assert.Equal(t, "rootfs", cfg.Labels["sealos.io.type"])
	assert.ElementsMatch(t, []string{"registryPort=5050", "registryDomain=sealos.hub", "registryUsername=admin", "registryData=/var/lib/registry"}, cfg.Env)
	assert.Equal(t, []string{"bash scripts/init.sh"}, cfg.Cmd)
	require.NotNil(t, base.config.Created)
	assert.Equal(t, int64(1700000000), base.config.Created.Unix())
	assert.Equal(t, "2023-11-14T22:13:20Z", base.manifest.Annotations[ocispecs.AnnotationCreated])
	assert.Equal(t, "base", base.manifest.Annotations[ocispecs.AnnotationTitle])
	assert.Len(t, base.manifest.Layers, 3)
	assert.Contains(t, base.out, "[stage-0 4/7] COPY bin bin")

	// The same build again gives the same digest, all from cache.
	again, err := build(t, e, images, ctxDir, buildkit.BuildOptions{
		Tags:      []string{"docker.io/library/base:v1"},
		BuildArgs: map[string]string{"SOURCE_DATE_EPOCH": "1700000000"},
	})
	require.NoError(t, err, again.out)
	assert.Equal(t, base.desc.Digest, again.desc.Digest)
	assert.Equal(t, again.res.Steps, again.res.Cached, again.out)

	// An image FROM the first one, found in the local store through a named context.
	app := t.TempDir()
	writeFiles(t, app, map[string]string{
		"Sealfile":          "FROM base:v1\nLABEL sealos.io.type=patch\nCOPY manifests manifests\n",
		"manifests/cm.yaml": "kind: ConfigMap\n",
	})
	patch, err := build(t, e, images, app, buildkit.BuildOptions{
		File: filepath.Join(app, "Sealfile"),
		Tags: []string{"docker.io/library/patch:v1"},
	})
	require.NoError(t, err, patch.out)
	assert.Equal(t, "patch", patch.config.Config.Labels["sealos.io.type"])
	assert.Equal(t, "base", patch.config.Config.Labels["org.opencontainers.image.title"], "labels are inherited")
	assert.Contains(t, patch.config.Config.Env, "registryPort=5050", "env is inherited")
	assert.Equal(t, []string{"bash scripts/init.sh"}, patch.config.Config.Cmd)
	assert.Len(t, patch.manifest.Layers, 4, "the base's three layers and one of its own")
	assert.Equal(t, base.manifest.Layers[0].Digest, patch.manifest.Layers[0].Digest)
	assert.Equal(t, "base:v1", patch.manifest.Annotations[ocispecs.AnnotationBaseImageName])
	assert.Equal(t, base.desc.Digest.String(), patch.manifest.Annotations[ocispecs.AnnotationBaseImageDigest])
}

// A rootfs image without sealos.io.version builds, as with sealos, and the build warns
// through Options.Warn that sealos run would refuse it.
func TestBuildRootfsWithoutVersionWarns(t *testing.T) {
	needRoot(t)
	e, err := buildkit.Connect(context.Background(), "", buildkit.DaemonOptions{Root: t.TempDir()}, nil)
	require.NoError(t, err)
	defer e.Close()
	images := openStore(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"Kubefile": "FROM scratch\nLABEL sealos.io.type=rootfs\n"})
	var warnings []string
	b, err := build(t, e, images, ctxDir, buildkit.BuildOptions{
		Tags:     []string{"docker.io/library/rootfs:noversion"},
		Frontend: frontend.BuildFunc(frontend.Options{Warn: func(msg string) { warnings = append(warnings, msg) }}),
	})
	require.NoError(t, err, b.out)
	assert.Equal(t, "rootfs", b.config.Config.Labels["sealos.io.type"])
	assert.Contains(t, b.config.Config.Env, "registryDomain=sealos.hub")
	assert.Equal(t, []string{"Kubefile:2: LABEL: a rootfs image needs the label sealos.io.version=v1beta1 (or v1beta2); 'sealos run' refuses such an image"}, warnings)
}

func TestBuildErrorsThroughBuildKit(t *testing.T) {
	needRoot(t)
	e, err := buildkit.Connect(context.Background(), "", buildkit.DaemonOptions{Root: t.TempDir()}, nil)
	require.NoError(t, err)
	defer e.Close()
	images := openStore(t)
	cases := []struct{ kubefile, want string }{
		{"FROM scratch\nCOPPY a b\n", `Kubefile:2: unknown instruction "COPPY" (did you mean COPY?)`},
		{"FROM scratch\nCOPY missing /x\n", `Kubefile:2: COPY: "/missing": not found in the build context`},
	}
	if _, err := exec.LookPath("runc"); err == nil {
		cases = append(cases, struct{ kubefile, want string }{"FROM scratch\nENV A=1\nRUN exit 3\n", "Kubefile:3: RUN: "})
	}
	for _, c := range cases {
		ctxDir := t.TempDir()
		writeFiles(t, ctxDir, map[string]string{"Kubefile": c.kubefile})
		b, err := build(t, e, images, ctxDir, buildkit.BuildOptions{Tags: []string{"docker.io/library/x:y"}})
		require.Error(t, err, b.out)
		// The engine's caller turns BuildKit's located error into a Kubefile one.
		assert.Contains(t, err.Error(), c.want)
	}
}

func TestBuildRunThroughBuildKit(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		testtool.Missing(t, "RUN needs runc (apt-get install runc)")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		testtool.Missing(t, "needs Debian's busybox-static for a RUN base (apt-get install busybox-static)")
	}
	data, err := os.ReadFile(bb)
	require.NoError(t, err)
	e, err := buildkit.Connect(context.Background(), "", buildkit.DaemonOptions{Root: t.TempDir()}, nil)
	require.NoError(t, err)
	defer e.Close()
	images := openStore(t)
	ctxDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(ctxDir, "busybox"), data, 0o755))
	writeFiles(t, ctxDir, map[string]string{"Kubefile": `FROM scratch AS busybox
COPY --chmod=0755 busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM busybox AS gen
ARG GREETING=hello
ENV OUT=/out
WORKDIR /work
RUN echo "$GREETING from $(pwd) as $(id -u)" > $OUT && echo printed-by-run
RUN <<EOF
set -e
mkdir -p /more
echo heredoc > /more/file
EOF

FROM scratch
LABEL sealos.io.type=application
COPY --from=gen /out /more/file /data/
CMD ["cat /data/out"]
`})
	b, err := build(t, e, images, ctxDir, buildkit.BuildOptions{
		Tags:      []string{"docker.io/library/gen:v1"},
		BuildArgs: map[string]string{"GREETING": "hi"},
	})
	require.NoError(t, err, b.out)
	assert.Contains(t, b.out, "printed-by-run")
	assert.Len(t, b.manifest.Layers, 1)
	assert.Equal(t, []string{"cat /data/out"}, b.config.Config.Cmd)
	assert.Empty(t, b.config.Config.Env, "ARGs and the build stage's ENV stay out of the image")

	files := layerFiles(t, images, "docker.io/library/gen:v1")
	assert.Equal(t, "hi from /work as 0\n", files["data/out"], "RUN saw the build arg, WORKDIR and the user")
	assert.Equal(t, "heredoc\n", files["data/file"])
}

// layerFiles reads the regular files of an image's layers from the store.
func layerFiles(t *testing.T, s *store.Store, ref string) map[string]string {
	t.Helper()
	img, err := s.Image(context.Background(), ref)
	require.NoError(t, err)
	layers, err := img.Layers()
	require.NoError(t, err)
	out := map[string]string{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		require.NoError(t, err)
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			if h.Typeflag == tar.TypeReg {
				b, err := io.ReadAll(tr)
				require.NoError(t, err)
				out[h.Name] = string(b)
			}
		}
		require.NoError(t, rc.Close())
	}
	return out
}

func TestBuildMultiPlatformThroughBuildKit(t *testing.T) {
	needRoot(t)
	e, err := buildkit.Connect(context.Background(), "", buildkit.DaemonOptions{Root: t.TempDir()}, nil)
	require.NoError(t, err)
	defer e.Close()
	images := openStore(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{
		"Kubefile":  "FROM scratch\nARG TARGETARCH\nLABEL arch=$TARGETARCH org.opencontainers.image.title=multi\nCOPY bin-${TARGETARCH} /bin/tool\n",
		"bin-amd64": "amd64 tool",
		"bin-arm64": "arm64 tool",
	})
	var out bytes.Buffer
	res, err := e.Build(context.Background(), buildkit.BuildOptions{
		ContextDir: ctxDir, File: filepath.Join(ctxDir, "Kubefile"), Store: images,
		Tags: []string{"docker.io/library/multi:v1"}, Platforms: []string{"linux/amd64", "linux/arm64"},
		Frontend: frontend.Build, Progress: "plain", ProgressOut: &out,
	})
	require.NoError(t, err, out.String())
	require.Equal(t, ocispecs.MediaTypeImageIndex, res.Descriptor.MediaType)
	var idx ocispecs.Index
	readJSON(t, images.Dir(), res.Descriptor.Digest, &idx)
	require.Len(t, idx.Manifests, 2)
	for _, d := range idx.Manifests {
		require.NotNil(t, d.Platform)
		var m ocispecs.Manifest
		readJSON(t, images.Dir(), d.Digest, &m)
		var cfg ocispecs.Image
		readJSON(t, images.Dir(), m.Config.Digest, &cfg)
		assert.Equal(t, d.Platform.Architecture, cfg.Architecture)
		assert.Equal(t, d.Platform.Architecture, cfg.Config.Labels["arch"])
		assert.Equal(t, "multi", m.Annotations[ocispecs.AnnotationTitle], "annotations reach every manifest")
		assert.NotEmpty(t, m.Annotations[ocispecs.AnnotationCreated])
	}
}

func TestReproducibleWithSourceDateEpoch(t *testing.T) {
	needRoot(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{
		"Kubefile":         "FROM scratch\nLABEL sealos.io.type=application\nCOPY manifests manifests\nCMD [\"kubectl apply -f manifests\"]\n",
		"manifests/a.yaml": "kind: ConfigMap\n",
	})
	var digests []digest.Digest
	for range 2 {
		// A fresh engine and store each time: nothing comes from a cache.
		e, err := buildkit.Connect(context.Background(), "", buildkit.DaemonOptions{Root: t.TempDir()}, nil)
		require.NoError(t, err)
		b, err := build(t, e, openStore(t), ctxDir, buildkit.BuildOptions{
			Tags:      []string{"docker.io/library/repro:v1"},
			BuildArgs: map[string]string{"SOURCE_DATE_EPOCH": "1700000000"},
		})
		require.NoError(t, e.Close())
		require.NoError(t, err, b.out)
		digests = append(digests, b.desc.Digest)
	}
	assert.Equal(t, digests[0], digests[1])
}
