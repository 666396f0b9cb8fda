package client_test

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/registry/server"
)

// A hub with the defaults refuses an index whose other platforms' images are absent, as
// stock distribution does: a sync of the host's platform falls back to the platform's
// image under the tag, which pulls.
func TestSyncHostPlatformToDefaultHub(t *testing.T) {
	src := startHub(t, server.Config{}, nil)
	want := seedSource(t, src)
	dst := startHub(t, server.Config{}, nil)

	rep, err := client.Sync(context.Background(), src, dst, client.SyncOptions{Repos: []string{"base/multi"}})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	got, ok := headDigest(t, dst+"/base/multi:v1")
	require.True(t, ok)
	assert.NotEqual(t, want["base/multi:v1"], got, "the partial index was refused")

	idx, err := remote.Index(mustRef(t, src+"/base/multi:v1"))
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	host := ""
	for _, c := range im.Manifests {
		if c.Platform.Satisfies(client.HostPlatform()) {
			host = c.Digest.String()
		}
	}
	assert.Equal(t, host, got.String(), "the platform's image is tagged instead")
	img, err := remote.Image(mustRef(t, dst+"/base/multi:v1"))
	require.NoError(t, err)
	_, err = img.Layers()
	require.NoError(t, err)
}
