package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A manifest list is an image index the store names, edited in place the way buildah's
// `manifest` commands edit theirs: every change writes a new index blob and moves the name
// to it, so the images it lists stay in the store as long as the list does.

// ErrNotList: the name is taken by a single image, not a manifest list.
var ErrNotList = errors.New("is an image, not a manifest list")

// ErrListExists: creating a manifest list whose name is taken.
var ErrListExists = errors.New("already exists")

// ListEdit says how EditList treats a list that is missing or present.
type ListEdit int

const (
	// EditExisting changes a list that must exist.
	EditExisting ListEdit = iota
	// CreateList makes an empty list; the name must be free.
	CreateList
	// CreateOrEdit makes the list if it is missing and changes it otherwise (buildah's
	// --amend, and what `build --manifest` does).
	CreateOrEdit
)

// EditList runs fn on the manifest list name and stores the result under name. fn sees a
// copy and may run more than once (on a freshly read list each time), so it must not have
// effects outside the index it is given. It returns the descriptor of the new list.
func (s *Store) EditList(ctx context.Context, name string, mode ListEdit, fn func(*v1.IndexManifest) error) (v1.Descriptor, error) {
	r, err := ParseRef(name)
	if err != nil {
		return v1.Descriptor{}, err
	}
	release, err := s.Lease(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer release()
	var out v1.Descriptor
	err = s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
		m, found := s.matchName(idx, r)
		list := &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
		switch {
		case found && mode == CreateList:
			return false, fmt.Errorf("manifest list %s %w (use --amend to change it)", DisplayName(refString(r)), ErrListExists)
		case found && !isIndex(m.desc.MediaType):
			return false, fmt.Errorf("%s %w", DisplayName(refString(r)), ErrNotList)
		case found:
			raw, err := s.readBlob(m.desc.Digest)
			if err != nil {
				return false, err
			}
			if err := json.Unmarshal(raw, list); err != nil {
				return false, fmt.Errorf("manifest list %s: %w", DisplayName(refString(r)), err)
			}
		case mode == EditExisting:
			return false, fmt.Errorf("manifest list %s: %w", DisplayName(refString(r)), ErrNotFound)
		}
		if err := fn(list); err != nil {
			return false, err
		}
		if list.Manifests == nil {
			list.Manifests = []v1.Descriptor{}
		}
		raw, err := json.Marshal(list)
		if err != nil {
			return false, err
		}
		// Content addressed: writing it again on a retry stores nothing new.
		h, err := s.writeBlobBytes(ctx, raw)
		if err != nil {
			return false, err
		}
		out = v1.Descriptor{MediaType: list.MediaType, Digest: h, Size: int64(len(raw))}
		if out.MediaType == "" {
			out.MediaType = types.OCIImageIndex
		}
		setEntry(idx, out, r)
		return true, nil
	})
	return out, err
}

// ListEntry describes the manifest that ref (any form Resolve takes) names, as an entry of
// a manifest list: its digest, media type, size and the platform of its config. For an
// index, all=true returns an entry for every image in it (attestations left out) and
// all=false the image for platform.
func (s *Store) ListEntry(ctx context.Context, ref string, all bool, platform v1.Platform) ([]v1.Descriptor, error) {
	desc, err := s.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	return s.ListEntryOf(desc, ref, all, platform)
}

// ListEntryOf is ListEntry for a manifest or index of the store given by its descriptor
// (a build's result, which may have no name); ref names it in messages.
func (s *Store) ListEntryOf(desc v1.Descriptor, ref string, all bool, platform v1.Platform) ([]v1.Descriptor, error) {
	if !isIndex(desc.MediaType) {
		d, err := s.describeImage(desc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		return []v1.Descriptor{d}, nil
	}
	idx, err := s.indexAt(desc)
	if err != nil {
		return nil, err
	}
	if !all {
		d, err := pickPlatform(idx, platform, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (use --all to add every image of it)", ref, err)
		}
		return []v1.Descriptor{entryOf(d)}, nil
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []v1.Descriptor
	for _, d := range im.Manifests {
		if !isAttestation(d) {
			out = append(out, entryOf(d))
		}
	}
	return out, nil
}

// describeImage returns an image manifest's descriptor with the platform its config
// declares, since a store entry carries none.
func (s *Store) describeImage(desc v1.Descriptor) (v1.Descriptor, error) {
	img, err := s.imageAt(desc)
	if err != nil {
		return v1.Descriptor{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d := v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	if p := cf.Platform(); p != nil && p.OS != "" {
		d.Platform = p
	}
	return d, nil
}

// entryOf is d without the store's own annotations (names), ready to go into a list.
func entryOf(d v1.Descriptor) v1.Descriptor {
	out := v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Platform: d.Platform}
	if len(d.Annotations) > 0 {
		out.Annotations = maps.Clone(d.Annotations)
		delete(out.Annotations, AnnotationImageName)
		delete(out.Annotations, AnnotationRefName)
		if len(out.Annotations) == 0 {
			out.Annotations = nil
		}
	}
	return out
}

// PutListEntry adds d to list, replacing an entry of the same digest (adding an image
// twice leaves one entry, as buildah does).
func PutListEntry(list *v1.IndexManifest, d v1.Descriptor) {
	for i, e := range list.Manifests {
		if e.Digest == d.Digest {
			list.Manifests[i] = d
			return
		}
	}
	list.Manifests = append(list.Manifests, d)
}

// IsList reports whether name names a manifest list (an index) in the store.
func (s *Store) IsList(ctx context.Context, name string) (bool, error) {
	desc, err := s.Resolve(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return isIndex(desc.MediaType), nil
}

// RawManifest returns the bytes of the manifest or index ref names.
func (s *Store) RawManifest(ctx context.Context, ref string) ([]byte, error) {
	desc, err := s.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	return s.readBlob(desc.Digest)
}
