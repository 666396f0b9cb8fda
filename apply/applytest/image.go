package applytest

import (
	"archive/tar"
	"bytes"
	"io"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Layer is a layer with files (path -> content). A path ending in "/" is a directory; a
// content starting with "->" makes a symlink; an executable bit is set for paths under
// bin/ and for *.sh; a name ".wh.X" is a whiteout, as the OCI spec says.
func Layer(files map[string]string) v1.Layer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := files[n]
		h := &tar.Header{Name: n, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(c))}
		switch {
		case strings.HasSuffix(n, "/"):
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case strings.HasPrefix(c, "->"):
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, strings.TrimPrefix(c, "->"), 0
		case strings.HasPrefix(n, "bin/") || strings.HasSuffix(n, ".sh"):
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(c))
		}
	}
	_ = tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		panic(err)
	}
	return l
}

// Config is the image config of a test image.
type Config struct {
	Labels     map[string]string
	Env        []string
	Entrypoint []string
	Cmd        []string
}

// Image is an image of layers with cfg.
func Image(cfg Config, layers ...v1.Layer) v1.Image {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		panic(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		panic(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Config.Labels = cfg.Labels
	cf.Config.Env = cfg.Env
	cf.Config.Entrypoint = cfg.Entrypoint
	cf.Config.Cmd = cfg.Cmd
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		panic(err)
	}
	return img
}

// Rootfs returns the labels of a rootfs image (more labels may be given as k, v pairs).
func Rootfs(kv ...string) map[string]string {
	m := map[string]string{"sealos.io.type": "rootfs", "sealos.io.version": "v1beta1"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}
