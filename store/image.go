package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Option tunes how an image is picked from the store.
type Option func(*options)

type options struct {
	platform *v1.Platform
}

// WithPlatform picks this platform's image out of an index (default: the host's).
func WithPlatform(p v1.Platform) Option {
	return func(o *options) { o.platform = &p }
}

// HostPlatform is the platform of this machine, as index entries name it.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

// Image returns the image ref names. For an index it returns the child for the requested
// platform (WithPlatform; default the host's); an index with a single image returns that
// image whatever its platform.
func (s *Store) Image(ctx context.Context, ref string, opts ...Option) (v1.Image, error) {
	desc, err := s.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	return s.imageFor(desc, opts...)
}

// ImageIndex returns the index ref names; an error wrapping ErrNotIndex if ref names a
// single image.
func (s *Store) ImageIndex(ctx context.Context, ref string) (v1.ImageIndex, error) {
	desc, err := s.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	if !isIndex(desc.MediaType) {
		return nil, fmt.Errorf("%s: %w", ref, ErrNotIndex)
	}
	return s.indexAt(desc)
}

// ErrNotIndex: the reference names a single image, not an index.
var ErrNotIndex = errors.New("not an image index")

// ImageByDigest returns the image whose manifest has digest h, if its blob is in the store.
func (s *Store) ImageByDigest(h v1.Hash) (v1.Image, error) {
	return s.imageAt(v1.Descriptor{Digest: h})
}

func (s *Store) imageFor(desc v1.Descriptor, opts ...Option) (v1.Image, error) {
	if !isIndex(desc.MediaType) {
		return s.imageAt(desc)
	}
	o := options{}
	for _, f := range opts {
		f(&o)
	}
	want := HostPlatform()
	if o.platform != nil {
		want = *o.platform
	}
	idx, err := s.indexAt(desc)
	if err != nil {
		return nil, err
	}
	child, err := pickPlatform(idx, want, o.platform == nil)
	if err != nil {
		return nil, err
	}
	if isIndex(child.MediaType) {
		return s.imageFor(child, opts...)
	}
	return s.imageAt(child)
}

// pickPlatform chooses the index entry for want, skipping attestation manifests. With
// lenient, an index holding exactly one image returns it whatever its platform.
func pickPlatform(idx v1.ImageIndex, want v1.Platform, lenient bool) (v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	var images []v1.Descriptor
	for _, d := range im.Manifests {
		if isAttestation(d) {
			continue
		}
		images = append(images, d)
		if d.Platform != nil && d.Platform.Satisfies(want) {
			return d, nil
		}
	}
	if lenient && len(images) == 1 {
		return images[0], nil
	}
	var have []string
	for _, d := range images {
		if d.Platform != nil {
			have = append(have, d.Platform.String())
		}
	}
	return v1.Descriptor{}, fmt.Errorf("%w: no image for platform %s in the index (it has %v)", ErrNotFound, want.String(), have)
}

func isAttestation(d v1.Descriptor) bool {
	if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
		return true
	}
	return d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}

func isIndex(mt types.MediaType) bool {
	return mt == types.OCIImageIndex || mt == types.DockerManifestList
}

// readBlob returns a small blob's bytes after checking its digest.
func (s *Store) readBlob(h v1.Hash) ([]byte, error) {
	b, err := os.ReadFile(s.blobPath(h))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", h, ErrBlobMissing)
		}
		return nil, err
	}
	if h.Algorithm == "sha256" {
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != h.Hex {
			return nil, fmt.Errorf("blob %s is damaged: its content does not match its digest", h)
		}
	}
	return b, nil
}

// ErrBlobMissing: a blob an image refers to is not in the store (e.g. the other platforms
// of a partially pulled index).
var ErrBlobMissing = errors.New("blob not in the store")

// sniffMediaType reads the mediaType field of a manifest or index.
func sniffMediaType(raw []byte) types.MediaType {
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	_ = json.Unmarshal(raw, &m)
	if m.MediaType != "" {
		return m.MediaType
	}
	if m.Manifests != nil {
		return types.OCIImageIndex
	}
	return types.OCIManifestSchema1
}

// imageAt returns the image whose manifest desc describes.
func (s *Store) imageAt(desc v1.Descriptor) (v1.Image, error) {
	raw, err := s.readBlob(desc.Digest)
	if err != nil {
		return nil, err
	}
	mt := desc.MediaType
	if mt == "" {
		mt = sniffMediaType(raw)
	}
	if isIndex(mt) {
		return nil, fmt.Errorf("%s is an image index, not an image", desc.Digest)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", desc.Digest, err)
	}
	core := &storeImage{s: s, mediaType: mt, raw: raw, manifest: m}
	return partial.CompressedToImage(core)
}

// storeImage is a partial.CompressedImageCore over the store's blobs.
type storeImage struct {
	s         *Store
	mediaType types.MediaType
	raw       []byte
	manifest  *v1.Manifest

	once   sync.Once
	config []byte
	cerr   error
}

func (i *storeImage) MediaType() (types.MediaType, error) { return i.mediaType, nil }
func (i *storeImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *storeImage) Manifest() (*v1.Manifest, error)     { return i.manifest, nil }

func (i *storeImage) RawConfigFile() ([]byte, error) {
	i.once.Do(func() { i.config, i.cerr = i.s.readBlob(i.manifest.Config.Digest) })
	return i.config, i.cerr
}

func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.manifest.Config.Digest {
		return &storeBlob{s: i.s, desc: i.manifest.Config}, nil
	}
	for _, d := range i.manifest.Layers {
		if d.Digest == h {
			return &storeBlob{s: i.s, desc: d}, nil
		}
	}
	return nil, fmt.Errorf("layer %s is not in image", h)
}

// storeBlob is a partial.CompressedLayer backed by a blob file.
type storeBlob struct {
	s    *Store
	desc v1.Descriptor
}

func (b *storeBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *storeBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *storeBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *storeBlob) Descriptor() (*v1.Descriptor, error) { d := b.desc; return &d, nil }

func (b *storeBlob) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(b.s.blobPath(b.desc.Digest))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", b.desc.Digest, ErrBlobMissing)
	}
	return f, err
}

// Exists reports whether the blob is in the store (partial.Exists).
func (b *storeBlob) Exists() (bool, error) {
	_, err := os.Stat(b.s.blobPath(b.desc.Digest))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// indexAt returns the index whose manifest desc describes.
func (s *Store) indexAt(desc v1.Descriptor) (v1.ImageIndex, error) {
	raw, err := s.readBlob(desc.Digest)
	if err != nil {
		return nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse index %s: %w", desc.Digest, err)
	}
	mt := desc.MediaType
	if mt == "" {
		mt = sniffMediaType(raw)
	}
	return &storeIndex{s: s, mediaType: mt, raw: raw, manifest: im, digest: desc.Digest}, nil
}

// storeIndex is a v1.ImageIndex over the store's blobs.
type storeIndex struct {
	s         *Store
	mediaType types.MediaType
	raw       []byte
	manifest  *v1.IndexManifest
	digest    v1.Hash
}

var _ v1.ImageIndex = (*storeIndex)(nil)

func (i *storeIndex) MediaType() (types.MediaType, error)       { return i.mediaType, nil }
func (i *storeIndex) Digest() (v1.Hash, error)                  { return i.digest, nil }
func (i *storeIndex) Size() (int64, error)                      { return int64(len(i.raw)), nil }
func (i *storeIndex) RawManifest() ([]byte, error)              { return i.raw, nil }
func (i *storeIndex) IndexManifest() (*v1.IndexManifest, error) { return i.manifest.DeepCopy(), nil }

func (i *storeIndex) child(h v1.Hash) (v1.Descriptor, error) {
	for _, d := range i.manifest.Manifests {
		if d.Digest == h {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("manifest %s is not in index %s", h, i.digest)
}

func (i *storeIndex) Image(h v1.Hash) (v1.Image, error) {
	d, err := i.child(h)
	if err != nil {
		return nil, err
	}
	return i.s.imageAt(d)
}

func (i *storeIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	d, err := i.child(h)
	if err != nil {
		return nil, err
	}
	return i.s.indexAt(d)
}
