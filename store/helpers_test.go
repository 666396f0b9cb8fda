package store

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	digest "github.com/opencontainers/go-digest"
)

func validateImage(img v1.Image) error { return validate.Image(img) }

func toDigest(s string) digest.Digest { return digest.Digest(s) }
