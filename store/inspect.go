package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cluster-image/sealos/imagespec"
)

// Inspection is what `sealos inspect` prints: the image, its manifest and config, and
// what the cluster-image contract makes of them.
type Inspection struct {
	// Names are every name in the store for this digest.
	Names []string `json:"names"`
	// Digest is the manifest (or index) digest the reference resolved to.
	Digest v1.Hash `json:"digest"`
	// MediaType of that manifest or index.
	MediaType string `json:"mediaType"`
	// ID is the config digest of the image described below.
	ID v1.Hash `json:"id"`
	// Index is the raw index, when the reference names a multi-platform index; the fields
	// below then describe the image for Platform (the host's by default).
	Index json.RawMessage `json:"index,omitempty"`
	// Platforms of the index's images.
	Platforms []string `json:"platforms,omitempty"`
	// ManifestDigest is the digest of the image manifest described below.
	ManifestDigest v1.Hash `json:"manifestDigest"`
	// Platform of the image ("os/arch[/variant]" from its config).
	Platform string `json:"platform,omitempty"`
	// Manifest and Config are the raw manifest and config of the image.
	Manifest json.RawMessage `json:"manifest"`
	Config   json.RawMessage `json:"config"`
	// Created is the creation time in the config.
	Created time.Time `json:"created,omitzero"`
	// Size is the bytes of the image's config and layers.
	Size int64 `json:"size"`

	// Type is how the apply engine treats the image (imagespec.TypeOf).
	Type string `json:"type"`
	// Valid is the result of imagespec.Validate (false: sealos run refuses the image);
	// ValidationError says why not.
	Valid           bool   `json:"valid"`
	ValidationError string `json:"validationError,omitempty"`
	// Warnings are about labels accepted but probably not meant (imagespec.Check).
	Warnings []string `json:"warnings,omitempty"`

	Labels     map[string]string `json:"labels"`
	Env        []string          `json:"env"`
	Cmd        []string          `json:"cmd"`
	Entrypoint []string          `json:"entrypoint"`
	WorkingDir string            `json:"workingDir,omitempty"`
	User       string            `json:"user,omitempty"`
	// Annotations of the image manifest (and of the index, when there is one; the
	// manifest's win).
	Annotations map[string]string `json:"annotations,omitempty"`
	// Images are the container images saved in the cluster image (the
	// imagespec.AnnotationImages annotation, split).
	Images []string `json:"images"`
}

// Inspect describes the image ref names (any form Resolve takes). For an index it
// describes the image for the platform in opts (default: the host's) and lists the
// index's platforms.
func (s *Store) Inspect(ctx context.Context, ref string, opts ...Option) (*Inspection, error) {
	desc, err := s.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	ins := &Inspection{Digest: desc.Digest, MediaType: string(desc.MediaType), Labels: map[string]string{}, Env: []string{}, Cmd: []string{}, Entrypoint: []string{}, Images: []string{}}
	if ins.Names, err = s.Names(ctx, desc.Digest); err != nil {
		return nil, err
	}
	if ins.Names == nil {
		ins.Names = []string{}
	}
	annotations := map[string]string{}
	if isIndex(desc.MediaType) {
		ii, err := s.indexAt(desc)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", ref, err)
		}
		raw, _ := ii.RawManifest()
		ins.Index = raw
		im, _ := ii.IndexManifest()
		for _, d := range im.Manifests {
			if !isAttestation(d) && d.Platform != nil {
				ins.Platforms = append(ins.Platforms, d.Platform.String())
			}
		}
		for k, v := range im.Annotations {
			annotations[k] = v
		}
	}
	img, err := s.imageFor(desc, opts...)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	if ins.ManifestDigest, err = img.Digest(); err != nil {
		return nil, err
	}
	if ins.MediaType == "" {
		mt, _ := img.MediaType()
		ins.MediaType = string(mt)
	}
	if ins.Manifest, err = img.RawManifest(); err != nil {
		return nil, err
	}
	if ins.Config, err = img.RawConfigFile(); err != nil {
		return nil, fmt.Errorf("inspect %s: config: %w", ref, err)
	}
	if ins.ID, err = img.ConfigName(); err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	ins.Size = m.Config.Size
	for _, l := range m.Layers {
		ins.Size += l.Size
	}
	for k, v := range m.Annotations {
		annotations[k] = v
	}
	if len(annotations) > 0 {
		ins.Annotations = annotations
	}
	for _, it := range strings.Split(annotations[imagespec.AnnotationImages], ",") {
		if it = strings.TrimSpace(it); it != "" {
			ins.Images = append(ins.Images, it)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("inspect %s: config: %w", ref, err)
	}
	ins.Created = cfg.Created.Time
	if cfg.OS != "" {
		p := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		ins.Platform = p.String()
	}
	c := cfg.Config
	if c.Labels != nil {
		ins.Labels = c.Labels
	}
	if c.Env != nil {
		ins.Env = c.Env
	}
	if c.Cmd != nil {
		ins.Cmd = c.Cmd
	}
	if c.Entrypoint != nil {
		ins.Entrypoint = c.Entrypoint
	}
	ins.WorkingDir, ins.User = c.WorkingDir, c.User
	ins.Type = string(imagespec.TypeOf(c.Labels))
	if err := imagespec.Validate(c.Labels); err != nil {
		ins.ValidationError = err.Error()
	} else {
		ins.Valid = true
	}
	for _, w := range imagespec.Check(c.Labels) {
		ins.Warnings = append(ins.Warnings, w.Message)
	}
	return ins, nil
}
