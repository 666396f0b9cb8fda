package client

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cluster-image/sealos/store"
)

// Platforms returns the platforms ref is available for: those of its index, or the one
// of its config, read from the local store when it holds ref and from the registry
// otherwise. Attestation manifests are left out.
func Platforms(ctx context.Context, st *store.Store, ref string, opts ...Option) ([]v1.Platform, error) {
	if st != nil {
		if ii, err := st.ImageIndex(ctx, ref); err == nil {
			return indexPlatforms(ii)
		} else if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrNotIndex) {
			return nil, err
		}
		if img, err := st.Image(ctx, ref); err == nil {
			return configPlatform(ref, img)
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	d, err := Get(ctx, ref, opts...)
	if err != nil {
		return nil, err
	}
	if d.MediaType.IsIndex() {
		ii, err := d.ImageIndex()
		if err != nil {
			return nil, err
		}
		return indexPlatforms(ii)
	}
	img, err := d.Image()
	if err != nil {
		return nil, err
	}
	return configPlatform(ref, img)
}

func indexPlatforms(ii v1.ImageIndex) ([]v1.Platform, error) {
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []v1.Platform
	for _, d := range im.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue
		}
		out = append(out, *d.Platform)
	}
	return out, nil
}

func configPlatform(ref string, img v1.Image) ([]v1.Platform, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	p := cf.Platform()
	if p == nil || p.OS == "" || p.Architecture == "" {
		return nil, fmt.Errorf("%s: its config names no platform", ref)
	}
	return []v1.Platform{*p}, nil
}
