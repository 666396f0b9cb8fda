package store

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResolveForms(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	local := randomImage(t, 100, 1)
	hub := randomImage(t, 100, 1)
	named := randomImage(t, 100, 1)
	require.NoError(t, s.WriteImage(ctx, "localhost/foo:v1", local))
	require.NoError(t, s.WriteImage(ctx, "bar:v1", hub))
	require.NoError(t, s.WriteImage(ctx, "localhost/bar:v1", local))
	ld, _ := local.Digest()
	hd, _ := hub.Digest()

	for ref, want := range map[string]v1.Hash{
		"foo:v1":                       ld, // short name falls back to localhost/
		"localhost/foo:v1":             ld,
		"bar:v1":                       hd, // docker.io wins over localhost/
		"docker.io/library/bar:v1":     hd,
		"localhost/bar:v1":             ld,
		"localhost/foo@" + ld.String(): ld,
	} {
		d, err := s.Resolve(ctx, ref)
		require.NoError(t, err, ref)
		assert.Equal(t, want, d.Digest, ref)
	}
	for _, ref := range []string{"quay.io/foo:v1", "foo:v2", "docker.io/library/foo:v1", "quay.io/bar@" + ld.String(), "docker.io/library/bar@" + ld.String()} {
		_, err := s.Resolve(ctx, ref)
		assert.ErrorIs(t, err, ErrNotFound, ref)
	}
	_, err := s.Resolve(ctx, "Not A Ref")
	assert.Error(t, err)

	// A name that looks like an ID prefix is a name first.
	nd, _ := named.Digest()
	short := strings.ToLower(ld.Hex[:6])
	require.NoError(t, s.WriteImage(ctx, short+":latest", named))
	d, err := s.Resolve(ctx, short)
	require.NoError(t, err)
	assert.Equal(t, nd, d.Digest)
	d, err = s.Resolve(ctx, "sha256:"+short)
	require.NoError(t, err)
	assert.Equal(t, ld, d.Digest)
}

func TestResolveAmbiguousPrefix(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a := v1.Hash{Algorithm: "sha256", Hex: "abc1" + strings.Repeat("0", 60)}
	b := v1.Hash{Algorithm: "sha256", Hex: "abc2" + strings.Repeat("0", 60)}
	require.NoError(t, s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
		for i, h := range []v1.Hash{a, b} {
			r, _ := ParseRef("x:" + string(rune('a'+i)))
			setEntry(idx, v1.Descriptor{MediaType: types.OCIImageIndex, Digest: h, Size: 1}, r)
		}
		return true, nil
	}))
	_, err := s.Resolve(ctx, "abc")
	assert.ErrorIs(t, err, ErrAmbiguous)
	d, err := s.Resolve(ctx, "abc2")
	require.NoError(t, err)
	assert.Equal(t, b, d.Digest)
}
