package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Resolve returns the descriptor ref names in the store. ref may be:
//   - a reference, normalized like docker ("app:v1" is docker.io/library/app:v1). A
//     reference without a registry that is not found that way is also looked up under
//     localhost/ ("app:v1" finds localhost/app:v1), where buildah and podman keep
//     unqualified names;
//   - a digest reference (name@sha256:...), naming a stored image or a child of a stored
//     index of the same repository;
//   - an image ID or manifest digest, whole or a unique hex prefix, with or without
//     "sha256:" (the ID is the config digest of an image and the digest of an index).
//
// The error wraps ErrNotFound or ErrAmbiguous.
func (s *Store) Resolve(ctx context.Context, ref string) (v1.Descriptor, error) {
	if err := ctx.Err(); err != nil {
		return v1.Descriptor{}, err
	}
	idx, err := s.readIndex()
	if err != nil {
		return v1.Descriptor{}, err
	}
	m, err := s.match(idx, ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d := m.desc
	d.Annotations = maps.Clone(d.Annotations)
	return d, nil
}

// matchResult is what a reference names in an index.json.
type matchResult struct {
	desc    v1.Descriptor // the entry (or index child) the reference names
	entries []int         // index.json positions of the entries with that digest
	byName  bool          // matched by a name (tag), not by ID or digest
	named   int           // position of the entry matched by name, when byName
}

// hexLike reports whether s could be an image ID or digest prefix.
func hexLike(s string) bool {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) < 3 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Store) match(idx *v1.IndexManifest, ref string) (matchResult, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return matchResult{}, fmt.Errorf("empty image reference")
	}
	if !strings.HasPrefix(ref, "sha256:") {
		r, perr := ParseRef(ref)
		if perr == nil {
			if m, ok := s.matchName(idx, r); ok {
				return m, nil
			}
			if !hasRegistry(ref) {
				if lr, err := ParseRef("localhost/" + ref); err == nil {
					if m, ok := s.matchName(idx, lr); ok {
						return m, nil
					}
				}
			}
		}
		if !hexLike(ref) {
			if perr != nil {
				return matchResult{}, perr
			}
			return matchResult{}, fmt.Errorf("%s: %w", ref, ErrNotFound)
		}
	}
	if !hexLike(ref) {
		return matchResult{}, fmt.Errorf("invalid image ID %q", ref)
	}
	return s.matchID(idx, strings.TrimPrefix(ref, "sha256:"))
}

// hasRegistry reports whether a reference string names its registry, as docker decides:
// the first path component contains a '.' or ':' or is localhost.
func hasRegistry(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	if !ok {
		return false
	}
	return strings.ContainsAny(first, ".:") || first == "localhost"
}

func (s *Store) matchName(idx *v1.IndexManifest, r name.Reference) (matchResult, bool) {
	want := refString(r)
	for i, d := range idx.Manifests {
		if entryName(d) == want {
			return matchResult{desc: d, entries: sameDigest(idx, d.Digest), byName: true, named: i}, true
		}
	}
	dr, ok := r.(name.Digest)
	if !ok {
		return matchResult{}, false
	}
	h, err := v1.NewHash(dr.DigestStr())
	if err != nil {
		return matchResult{}, false
	}
	repo := repoString(dr.Context())
	for _, d := range idx.Manifests {
		if d.Digest == h && entryRepo(d) == repo {
			return matchResult{desc: d, entries: sameDigest(idx, h)}, true
		}
	}
	// A child of a stored index (a platform image pulled as part of a multi-arch image).
	for _, d := range idx.Manifests {
		if !isIndex(d.MediaType) || entryRepo(d) != repo {
			continue
		}
		if c, ok := s.findChild(d, h, 0); ok {
			return matchResult{desc: c}, true
		}
	}
	return matchResult{}, false
}

func (s *Store) findChild(d v1.Descriptor, h v1.Hash, depth int) (v1.Descriptor, bool) {
	if depth > 4 {
		return v1.Descriptor{}, false
	}
	ii, err := s.indexAt(d)
	if err != nil {
		return v1.Descriptor{}, false
	}
	im, _ := ii.IndexManifest()
	for _, c := range im.Manifests {
		if c.Digest == h {
			return c, true
		}
		if isIndex(c.MediaType) {
			if cc, ok := s.findChild(c, h, depth+1); ok {
				return cc, true
			}
		}
	}
	return v1.Descriptor{}, false
}

// entryRepo is the normalized repository of an entry's name, or "".
func entryRepo(d v1.Descriptor) string {
	n := entryName(d)
	if n == "" {
		return ""
	}
	r, err := name.ParseReference(n)
	if err != nil {
		return ""
	}
	return repoString(r.Context())
}

func sameDigest(idx *v1.IndexManifest, h v1.Hash) []int {
	var out []int
	for i, d := range idx.Manifests {
		if d.Digest == h {
			out = append(out, i)
		}
	}
	return out
}

// matchID finds the entries whose image ID or manifest digest starts with prefix.
func (s *Store) matchID(idx *v1.IndexManifest, prefix string) (matchResult, error) {
	var found *v1.Descriptor
	for _, d := range idx.Manifests {
		ok := strings.HasPrefix(d.Digest.Hex, prefix)
		if !ok {
			if id, err := s.ImageID(d); err == nil && strings.HasPrefix(id.Hex, prefix) {
				ok = true
			}
		}
		if !ok {
			continue
		}
		if found != nil && found.Digest != d.Digest {
			return matchResult{}, fmt.Errorf("%w: %s matches %s and %s", ErrAmbiguous, prefix, found.Digest, d.Digest)
		}
		if found == nil {
			dd := d
			found = &dd
		}
	}
	if found == nil {
		return matchResult{}, fmt.Errorf("%s: %w", prefix, ErrNotFound)
	}
	return matchResult{desc: *found, entries: sameDigest(idx, found.Digest)}, nil
}

// ImageID is the ID of the image an entry names: its config digest, or the digest of an
// index.
func (s *Store) ImageID(d v1.Descriptor) (v1.Hash, error) {
	if isIndex(d.MediaType) {
		return d.Digest, nil
	}
	raw, err := s.readBlob(d.Digest)
	if err != nil {
		return v1.Hash{}, err
	}
	if d.MediaType == "" && isIndex(sniffMediaType(raw)) {
		return d.Digest, nil
	}
	var m struct {
		Config v1.Descriptor `json:"config"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return v1.Hash{}, err
	}
	return m.Config.Digest, nil
}

// setEntry names desc ref in idx, replacing whatever ref named before.
func setEntry(idx *v1.IndexManifest, desc v1.Descriptor, r name.Reference) {
	full := refString(r)
	out := idx.Manifests[:0]
	for _, d := range idx.Manifests {
		if entryName(d) != full {
			out = append(out, d)
		}
	}
	d := desc
	d.Annotations = maps.Clone(desc.Annotations)
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[AnnotationImageName] = full
	d.Annotations[AnnotationRefName] = refNameOf(r)
	d.Platform = nil
	idx.Manifests = append(out, d)
}
