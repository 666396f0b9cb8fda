package store

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func validateImage(img v1.Image) error { return validate.Image(img) }
