package store

import (
	"context"
	"encoding/json"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/imagespec"
)

func clusterImage(t testing.TB, labels map[string]string, images string) v1.Image {
	t.Helper()
	base := randomImage(t, 200, 1)
	cfg, err := base.ConfigFile()
	require.NoError(t, err)
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config = v1.Config{
		Labels:     labels,
		Env:        []string{"registryDomain=sealos.hub", "A=b"},
		Cmd:        []string{"kubectl apply -f manifests"},
		Entrypoint: []string{"/bin/sh", "-c"},
	}
	img, err := mutate.ConfigFile(base, cfg)
	require.NoError(t, err)
	if images != "" {
		img = mutate.Annotations(img, map[string]string{imagespec.AnnotationImages: images}).(v1.Image)
	}
	return img
}

func TestInspect(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	img := clusterImage(t, map[string]string{imagespec.LabelType: "rootfs", imagespec.LabelVersion: "v1beta1"}, "docker.io/library/nginx:1.25, quay.io/x/y:v1")
	require.NoError(t, s.WriteImage(ctx, "kube:v1", img))
	require.NoError(t, s.Tag(ctx, "kube:v1", "localhost:5000/kube:v1"))

	ins, err := s.Inspect(ctx, "kube:v1")
	require.NoError(t, err)
	d, _ := img.Digest()
	id, _ := img.ConfigName()
	assert.Equal(t, d, ins.Digest)
	assert.Equal(t, d, ins.ManifestDigest)
	assert.Equal(t, id, ins.ID)
	assert.Equal(t, []string{"docker.io/library/kube:v1", "localhost:5000/kube:v1"}, ins.Names)
	assert.Equal(t, "rootfs", ins.Type)
	assert.True(t, ins.Valid)
	assert.Equal(t, "v1beta1", ins.Labels[imagespec.LabelVersion])
	assert.Equal(t, []string{"registryDomain=sealos.hub", "A=b"}, ins.Env)
	assert.Equal(t, []string{"kubectl apply -f manifests"}, ins.Cmd)
	assert.Equal(t, []string{"/bin/sh", "-c"}, ins.Entrypoint)
	assert.Equal(t, []string{"docker.io/library/nginx:1.25", "quay.io/x/y:v1"}, ins.Images)
	assert.Equal(t, "linux/amd64", ins.Platform)
	var m v1.Manifest
	require.NoError(t, json.Unmarshal(ins.Manifest, &m))
	assert.Equal(t, id, m.Config.Digest)
	var cfg v1.ConfigFile
	require.NoError(t, json.Unmarshal(ins.Config, &cfg))
	assert.Equal(t, "amd64", cfg.Architecture)

	// By ID prefix, the same.
	byID, err := s.Inspect(ctx, id.Hex[:12])
	require.NoError(t, err)
	assert.Equal(t, ins.Digest, byID.Digest)

	// Invalid cluster images are reported, not refused.
	bad := clusterImage(t, map[string]string{imagespec.LabelType: "rootfs"}, "")
	require.NoError(t, s.WriteImage(ctx, "bad:v1", bad))
	ins, err = s.Inspect(ctx, "bad:v1")
	require.NoError(t, err)
	assert.Equal(t, "rootfs", ins.Type)
	assert.False(t, ins.Valid)
	assert.Contains(t, ins.ValidationError, imagespec.LabelVersion)
	assert.Empty(t, ins.Images)

	assert.Equal(t, []string{"a rootfs image needs the label sealos.io.version=v1beta1 (or v1beta2); 'sealos run' refuses such an image"}, ins.Warnings)

	// A type sealos accepts but does not know runs as an application: valid, with a warning.
	unknown := clusterImage(t, map[string]string{imagespec.LabelType: "weird"}, "")
	require.NoError(t, s.WriteImage(ctx, "weird:v1", unknown))
	ins, err = s.Inspect(ctx, "weird:v1")
	require.NoError(t, err)
	assert.Equal(t, "application", ins.Type)
	assert.True(t, ins.Valid)
	assert.Equal(t, []string{`sealos.io.type "weird" is not one of rootfs, application, patch: the image is run as an application (on the first master only)`}, ins.Warnings)

	// The older type label is understood.
	older := clusterImage(t, map[string]string{imagespec.LabelTypeV2: "rootfs", imagespec.LabelVersionV2: "v1beta1"}, "")
	require.NoError(t, s.WriteImage(ctx, "older:v1", older))
	ins, err = s.Inspect(ctx, "older:v1")
	require.NoError(t, err)
	assert.Equal(t, "rootfs", ins.Type)
	assert.True(t, ins.Valid)
	assert.Empty(t, ins.Warnings)

	list, err := s.List(ctx)
	require.NoError(t, err)
	types := map[string]string{}
	for _, e := range list {
		types[e.Name] = e.Type
	}
	assert.Equal(t, map[string]string{
		"docker.io/library/kube:v1": "rootfs", "localhost:5000/kube:v1": "rootfs",
		"docker.io/library/bad:v1": "rootfs", "docker.io/library/weird:v1": "application",
		"docker.io/library/older:v1": "rootfs",
	}, types)

	plain := clusterImage(t, nil, "")
	require.NoError(t, s.WriteImage(ctx, "plain:v1", plain))
	ins, err = s.Inspect(ctx, "plain:v1")
	require.NoError(t, err)
	assert.Equal(t, "application", ins.Type)
	assert.True(t, ins.Valid)
}

func TestInspectIndex(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	amd := clusterImage(t, map[string]string{"arch": "amd64"}, "")
	armCfg, err := amd.ConfigFile()
	require.NoError(t, err)
	armCfg = armCfg.DeepCopy()
	armCfg.Architecture = "arm64"
	armCfg.Config.Labels = map[string]string{"arch": "arm64"}
	armImg, err := mutate.ConfigFile(amd, armCfg)
	require.NoError(t, err)
	ii := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: armImg, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	require.NoError(t, s.WriteIndex(ctx, "multi:v1", ii))
	ins, err := s.Inspect(ctx, "multi:v1", WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	require.NoError(t, err)
	d, _ := ii.Digest()
	ad, _ := armImg.Digest()
	assert.Equal(t, d, ins.Digest)
	assert.Equal(t, ad, ins.ManifestDigest)
	assert.NotEmpty(t, ins.Index)
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, ins.Platforms)
	assert.Equal(t, "arm64", ins.Labels["arch"])
}
