package store

import (
	"bytes"
	"context"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/moby/buildkit/client/ociindex"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeViaContentStore writes img's blobs into dir through containerd's local content
// store, the way BuildKit's OCI exporter does with an OutputStore, and returns the
// manifest descriptor.
func writeViaContentStore(t testing.TB, dir string, img interface {
	RawManifest() ([]byte, error)
	RawConfigFile() ([]byte, error)
}, layers [][]byte) ocispecs.Descriptor {
	t.Helper()
	ctx := context.Background()
	cs, err := contentlocal.NewStore(dir)
	require.NoError(t, err)
	put := func(b []byte, mt string) ocispecs.Descriptor {
		d := ocispecs.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
		require.NoError(t, content.WriteBlob(ctx, cs, d.Digest.String(), bytes.NewReader(b), d))
		return d
	}
	for _, l := range layers {
		put(l, ocispecs.MediaTypeImageLayerGzip)
	}
	cfg, err := img.RawConfigFile()
	require.NoError(t, err)
	put(cfg, ocispecs.MediaTypeImageConfig)
	raw, err := img.RawManifest()
	require.NoError(t, err)
	return put(raw, ocispecs.MediaTypeImageManifest)
}

// BuildKit's exporter with OutputStore (containerd's content store over Dir()), then
// TagDescriptor: the path builder/buildkit uses. BuildKit's own ociindex then reads the
// names we wrote.
func TestBuildKitContentStoreExportAndTagDescriptor(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	img := randomImage(t, 300, 2)
	ls, err := img.Layers()
	require.NoError(t, err)
	var layers [][]byte
	for _, l := range ls {
		rc, err := l.Compressed()
		require.NoError(t, err)
		var b bytes.Buffer
		_, err = b.ReadFrom(rc)
		require.NoError(t, err)
		rc.Close()
		layers = append(layers, b.Bytes())
	}
	release, err := s.Lease(ctx)
	require.NoError(t, err)
	od := writeViaContentStore(t, s.Dir(), img, layers)
	d, err := img.Digest()
	require.NoError(t, err)
	require.Equal(t, d.String(), od.Digest.String())

	// Naming content that is not all there fails.
	missing := od
	missing.Digest = digest.FromString("nope")
	assert.Error(t, s.TagDescriptor(ctx, toV1(t, missing), "bad:v1"))

	require.NoError(t, s.TagDescriptor(ctx, toV1(t, od), "app:v1", "localhost:5000/app:v1"))
	release()

	got, err := s.Image(ctx, "localhost:5000/app:v1")
	require.NoError(t, err)
	require.NoError(t, validateImage(got))

	// BuildKit's reader finds our names (its Get matches io.containerd.image.name).
	bd, err := ociindex.NewStoreIndex(s.Dir()).Get("docker.io/library/app:v1")
	require.NoError(t, err)
	require.NotNil(t, bd)
	assert.Equal(t, od.Digest, bd.Digest)

	// GC leaves containerd's ingest directory and everything named alone.
	rep, err := s.GC(ctx)
	require.NoError(t, err)
	assert.Zero(t, rep.Blobs)
}
