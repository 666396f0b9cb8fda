package client_test

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/require"
)

// withPlatforms rebuilds idx with its images under the given platforms, in order.
func withPlatforms(t *testing.T, idx v1.ImageIndex, plats []v1.Platform) v1.ImageIndex {
	t.Helper()
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, m.Manifests, len(plats))
	out := mutate.IndexMediaType(empty.Index, m.MediaType)
	for i, d := range m.Manifests {
		img, err := idx.Image(d.Digest)
		require.NoError(t, err)
		p := plats[i]
		out = mutate.AppendManifests(out, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{MediaType: d.MediaType, Platform: &p}})
	}
	return out
}
