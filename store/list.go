package store

import (
	"context"
	"encoding/json"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cluster-image/sealos/imagespec"
)

// Entry is one named (or untagged) image in the store.
type Entry struct {
	// Name is the full normalized reference (docker.io/library/app:v1); "" when untagged.
	Name string `json:"name,omitempty"`
	// Repository and Tag split Name ("docker.io/library/app", "v1"); Tag is "" for a
	// digest reference.
	Repository string `json:"repository,omitempty"`
	Tag        string `json:"tag,omitempty"`
	// Digest of the manifest or index.
	Digest v1.Hash `json:"digest"`
	// MediaType of the manifest or index.
	MediaType string `json:"mediaType"`
	// ID is the config digest of an image, the digest of an index.
	ID v1.Hash `json:"id"`
	// Index is true for a multi-platform image index.
	Index bool `json:"index,omitempty"`
	// Platforms of an index's images (without attestations).
	Platforms []string `json:"platforms,omitempty"`
	// Created is the creation time in the image config (for an index: of its newest image
	// in the store); zero when unknown.
	Created time.Time `json:"created,omitzero"`
	// Size is the bytes the image's blobs (manifests, configs, layers) take in the store,
	// counting each blob once.
	Size int64 `json:"size"`
	// Labels of the image config (for an index: of the host platform's image, if any).
	Labels map[string]string `json:"labels,omitempty"`
	// Type is how the apply engine treats the image (imagespec.TypeOf); "" when the config
	// could not be read.
	Type string `json:"type,omitempty"`
	// Descriptor is the index.json entry.
	Descriptor v1.Descriptor `json:"-"`
}

// ShortID is the first 12 hex digits of the ID, as docker prints it.
func (e Entry) ShortID() string {
	if len(e.ID.Hex) < 12 {
		return e.ID.Hex
	}
	return e.ID.Hex[:12]
}

// List returns every image in the store, sorted by name (untagged images last, by
// digest). Images whose blobs are missing or damaged are still listed, with what is known.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	sc := &summaryCache{s: s, byDigest: map[v1.Hash]*summary{}}
	out := make([]Entry, 0, len(idx.Manifests))
	for _, d := range idx.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dd := d
		dd.Annotations = maps.Clone(d.Annotations)
		e := Entry{Name: entryName(d), Digest: d.Digest, MediaType: string(d.MediaType), Descriptor: dd}
		if e.Name != "" {
			if r, err := name.ParseReference(e.Name); err == nil {
				e.Repository = repoString(r.Context())
				if t, ok := r.(name.Tag); ok {
					e.Tag = t.TagStr()
				}
			}
		}
		sum := sc.get(d)
		e.MediaType = string(sum.mediaType)
		e.ID = sum.id
		e.Index = sum.index
		e.Platforms = sum.platforms
		e.Created = sum.created
		e.Size = sum.size
		e.Labels = sum.labels
		if sum.configRead {
			e.Type = string(imagespec.TypeOf(sum.labels))
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.Name == "") != (b.Name == "") {
			return a.Name != ""
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Digest.String() < b.Digest.String()
	})
	return out, nil
}

// summary is what List shows about one manifest digest.
type summary struct {
	mediaType types.MediaType
	id        v1.Hash
	index     bool
	platforms []string
	created   time.Time
	size      int64
	labels    map[string]string
	blobs     map[v1.Hash]int64
	// configRead is true when labels come from a config that could be read.
	configRead bool
}

type summaryCache struct {
	s        *Store
	byDigest map[v1.Hash]*summary
}

// get summarizes the manifest or index d, reading each blob once per List.
func (c *summaryCache) get(d v1.Descriptor) *summary {
	if sm, ok := c.byDigest[d.Digest]; ok {
		return sm
	}
	sm := &summary{mediaType: d.MediaType, id: d.Digest, blobs: map[v1.Hash]int64{}}
	c.byDigest[d.Digest] = sm
	raw, err := c.s.readBlob(d.Digest)
	if err != nil {
		return sm
	}
	sm.blobs[d.Digest] = int64(len(raw))
	if sm.mediaType == "" {
		sm.mediaType = sniffMediaType(raw)
	}
	if isIndex(sm.mediaType) {
		sm.index = true
		var im v1.IndexManifest
		if json.Unmarshal(raw, &im) == nil {
			host := HostPlatform()
			for _, child := range im.Manifests {
				cs := c.get(child)
				for h, n := range cs.blobs {
					sm.blobs[h] = n
				}
				if isAttestation(child) {
					continue
				}
				if child.Platform != nil {
					sm.platforms = append(sm.platforms, child.Platform.String())
				}
				if cs.created.After(sm.created) {
					sm.created = cs.created
				}
				if !sm.configRead || (child.Platform != nil && child.Platform.Satisfies(host)) {
					sm.labels, sm.configRead = cs.labels, cs.configRead
				}
			}
		}
	} else {
		var m v1.Manifest
		if json.Unmarshal(raw, &m) == nil {
			sm.id = m.Config.Digest
			for _, l := range append([]v1.Descriptor{m.Config}, m.Layers...) {
				if c.s.HasBlob(l.Digest) {
					sm.blobs[l.Digest] = l.Size
				}
			}
			if cfgRaw, err := c.s.readBlob(m.Config.Digest); err == nil {
				var cfg struct {
					Created time.Time `json:"created"`
					Config  struct {
						Labels map[string]string `json:"Labels"`
					} `json:"config"`
				}
				if json.Unmarshal(cfgRaw, &cfg) == nil {
					sm.created = cfg.Created
					sm.labels = cfg.Config.Labels
					sm.configRead = true
				}
			}
		}
	}
	for _, n := range sm.blobs {
		sm.size += n
	}
	return sm
}

// Names returns every name in the store that points at digest h, sorted.
func (s *Store) Names(ctx context.Context, h v1.Hash) ([]string, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range idx.Manifests {
		if d.Digest == h {
			if n := entryName(d); n != "" {
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// DisplayName shortens a normalized reference the way docker prints it:
// "docker.io/library/app:v1" -> "app:v1".
func DisplayName(n string) string {
	if rest, ok := strings.CutPrefix(n, "docker.io/library/"); ok {
		return rest
	}
	if rest, ok := strings.CutPrefix(n, "docker.io/"); ok {
		return rest
	}
	return n
}
