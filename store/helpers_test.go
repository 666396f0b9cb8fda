package store

import (
	"encoding/json"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/require"
)

func validateImage(img v1.Image) error { return validate.Image(img) }

func toDigest(s string) digest.Digest { return digest.Digest(s) }

// toV1 converts an OCI descriptor to go-containerregistry's.
func toV1(t testing.TB, d ocispecs.Descriptor) v1.Descriptor {
	t.Helper()
	b, err := json.Marshal(d)
	require.NoError(t, err)
	var out v1.Descriptor
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}
