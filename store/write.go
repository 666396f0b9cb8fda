package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cluster-image/sealos/store/durable"
	"github.com/gofrs/flock"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// writeJobs is how many layers WriteImage copies at once.
const writeJobs = 3

// HasBlob reports whether the store holds the blob h.
func (s *Store) HasBlob(h v1.Hash) bool {
	_, err := os.Stat(s.blobPath(h))
	return err == nil
}

// WriteBlob copies r into the store as a blob. When want is not zero the content must
// have that digest (and size, when size >= 0), else nothing is stored. An existing blob is
// not written again (r is not read). It returns the digest and size of the blob.
//
// The content goes to a temporary file that is fsynced (unless DeferSync announced it) and
// renamed into place only after its digest is verified.
func (s *Store) WriteBlob(ctx context.Context, want v1.Hash, size int64, r io.Reader) (v1.Hash, int64, error) {
	if want.Hex != "" {
		if fi, err := os.Stat(s.blobPath(want)); err == nil {
			return want, fi.Size(), nil
		}
	}
	if want.Hex != "" && want.Algorithm != "sha256" {
		return v1.Hash{}, 0, fmt.Errorf("blob %s: only sha256 digests are supported", want)
	}
	f, err := createOwnedTemp(s.path(privateDir, tmpDir), "blob")
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("write blob: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	h := sha256.New()
	bufp := copyBufs.Get().(*[]byte)
	var n int64
	if size >= 0 {
		// read one byte more than declared, to refuse an overflow without storing it
		r = io.LimitReader(r, size+1)
	}
	if s.syncDeferred(want) {
		// the journal answers for it: the kernel writes it back when it likes
		n, err = io.CopyBuffer(io.MultiWriter(f, h), ctxReader{ctx, r}, *bufp)
	} else {
		// written back and flushed as it arrives: the final fdatasync has little to wait for
		dw := durable.NewWriter(f, 0)
		n, err = io.CopyBuffer(io.MultiWriter(dw, h), ctxReader{ctx, r}, *bufp)
		if err == nil {
			err = dw.Sync()
		} else {
			_ = dw.Flush() // wait for a background sync before the file is closed
		}
	}
	copyBufs.Put(bufp)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if want.Hex == "" {
			return v1.Hash{}, 0, fmt.Errorf("write blob: %w", err)
		}
		return v1.Hash{}, 0, fmt.Errorf("write blob %s: %w", want, err)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if want.Hex != "" && got != want {
		return v1.Hash{}, 0, fmt.Errorf("write blob: content has digest %s, want %s", got, want)
	}
	if size >= 0 && n != size {
		if n > size {
			return v1.Hash{}, 0, fmt.Errorf("write blob %s: more than the %d bytes declared", want, size)
		}
		return v1.Hash{}, 0, fmt.Errorf("write blob %s: got %d bytes, want %d", got, n, size)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return v1.Hash{}, 0, err
	}
	if err := os.Rename(tmp, s.blobPath(got)); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("write blob %s: %w", got, err)
	}
	if set, ok := ctx.Value(writtenKey{}).(*writtenSet); ok {
		set.add(got)
	}
	return got, n, nil
}

// writtenSet collects the blobs WriteBlob stores under a context made by withWritten.
type writtenSet struct {
	mu sync.Mutex
	hs []v1.Hash
}

func (b *writtenSet) add(h v1.Hash) {
	b.mu.Lock()
	b.hs = append(b.hs, h)
	b.mu.Unlock()
}

func (b *writtenSet) list() []v1.Hash {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.hs)
}

type writtenKey struct{}

// withWritten returns ctx under which WriteBlob records each blob it stores in set.
func withWritten(ctx context.Context, set *writtenSet) context.Context {
	return context.WithValue(ctx, writtenKey{}, set)
}

// dropUnreferenced deletes those of hs that no image refers to: what a failed write
// (a load) stored. It waits, for a while, until no other writer holds a Lease, as GC
// does, so that it never deletes a blob another writer has yet to name.
func (s *Store) dropUnreferenced(hs []v1.Hash) {
	if len(hs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dropWait)
	defer cancel()
	l := flock.New(s.path(privateDir, gcLockFile))
	if err := lockCtx(ctx, l, true); err != nil {
		slog.Warn("store: blobs of a failed write are left for the next rmi or prune: other writers are busy", "store", s.dir, "blobs", len(hs))
		return
	}
	defer l.Close()
	idx, err := s.readIndex()
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, d := range idx.Manifests {
		s.mark(d.Digest, keep, 0)
	}
	for _, h := range hs {
		if !keep[h.Hex] {
			_ = os.Remove(s.blobPath(h))
		}
	}
	_ = syncDir(s.path("blobs", "sha256"))
}

// dropWait bounds how long dropUnreferenced waits for other writers.
const dropWait = 30 * time.Second

func (s *Store) writeBlobBytes(ctx context.Context, b []byte) (v1.Hash, error) {
	sum := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	_, _, err := s.WriteBlob(ctx, h, int64(len(b)), bytes.NewReader(b))
	return h, err
}

// copyBufs are the buffers blobs are copied with: large, so a big blob takes few syscalls.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// WriteImage stores img (its layers, config and manifest) and names it ref. Blobs already
// in the store are not copied again. It replaces whatever ref named before.
func (s *Store) WriteImage(ctx context.Context, ref string, img v1.Image) error {
	return s.writeNamed(ctx, ref, func() (v1.Descriptor, error) { return s.writeImageBlobs(ctx, img) })
}

// WriteIndex stores ii with every image and index it holds, and names it ref.
func (s *Store) WriteIndex(ctx context.Context, ref string, ii v1.ImageIndex) error {
	return s.writeNamed(ctx, ref, func() (v1.Descriptor, error) { return s.writeIndexBlobs(ctx, ii, 0) })
}

// writeNamed writes blobs under a lease (so GC cannot take them before they are named),
// makes their directory entries durable, then points ref at the descriptor write returns.
func (s *Store) writeNamed(ctx context.Context, ref string, write func() (v1.Descriptor, error)) error {
	r, err := ParseRef(ref)
	if err != nil {
		return err
	}
	release, err := s.Lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	desc, err := write()
	if err != nil {
		return fmt.Errorf("write %s: %w", ref, err)
	}
	if err := syncDir(s.path("blobs", "sha256")); err != nil {
		return err
	}
	return s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
		setEntry(idx, desc, r)
		return true, nil
	})
}

// writeImageBlobs writes the layers, config and manifest of img and returns the
// manifest's descriptor.
func (s *Store) writeImageBlobs(ctx context.Context, img v1.Image) (v1.Descriptor, error) {
	layers, err := img.Layers()
	if err != nil {
		return v1.Descriptor{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(writeJobs)
	for _, l := range layers {
		g.Go(func() error { return s.writeLayer(gctx, l) })
	}
	if err := g.Wait(); err != nil {
		return v1.Descriptor{}, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	if _, err := s.writeBlobBytes(ctx, cfg); err != nil {
		return v1.Descriptor{}, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest: %w", err)
	}
	h, err := s.writeBlobBytes(ctx, raw)
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if mt == "" {
		mt = sniffMediaType(raw)
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(raw))}, nil
}

func (s *Store) writeLayer(ctx context.Context, l v1.Layer) error {
	want, err := l.Digest()
	if errors.Is(err, stream.ErrNotComputed) {
		want = v1.Hash{}
	} else if err != nil {
		return err
	}
	if want.Hex != "" && s.HasBlob(want) {
		return nil
	}
	size := int64(-1)
	if want.Hex != "" {
		if sz, err := l.Size(); err == nil {
			size = sz
		}
	}
	if mt, err := l.MediaType(); err == nil && !mt.IsDistributable() {
		// Foreign layers live elsewhere; store them only when they can be read.
		if ok, _ := partial.Exists(l); !ok {
			return nil
		}
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", want, err)
	}
	got, _, err := s.WriteBlob(ctx, want, size, rc)
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	if want.Hex == "" {
		// A streamed layer knows its digest once read; it must match what we stored.
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if d != got {
			return fmt.Errorf("layer digest %s does not match its content %s", d, got)
		}
	}
	return nil
}

func (s *Store) writeIndexBlobs(ctx context.Context, ii v1.ImageIndex, depth int) (v1.Descriptor, error) {
	if depth > 8 {
		return v1.Descriptor{}, fmt.Errorf("image index nested too deep")
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, c := range im.Manifests {
		switch {
		case isIndex(c.MediaType):
			child, err := ii.ImageIndex(c.Digest)
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("index %s: %w", c.Digest, err)
			}
			if _, err := s.writeIndexBlobs(ctx, child, depth+1); err != nil {
				return v1.Descriptor{}, err
			}
		case c.MediaType.IsImage() || c.MediaType == types.OCIManifestSchema1 || c.MediaType == "":
			img, err := ii.Image(c.Digest)
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("image %s: %w", c.Digest, err)
			}
			if _, err := s.writeImageBlobs(ctx, img); err != nil {
				return v1.Descriptor{}, fmt.Errorf("image %s: %w", c.Digest, err)
			}
		default:
			return v1.Descriptor{}, fmt.Errorf("index entry %s: unsupported media type %s", c.Digest, c.MediaType)
		}
	}
	raw, err := ii.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, err := s.writeBlobBytes(ctx, raw)
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := ii.MediaType()
	if err != nil || mt == "" {
		mt = sniffMediaType(raw)
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(raw))}, nil
}

// Tag names the image src names dst too (src: any form Resolve takes). It replaces
// whatever dst named before.
func (s *Store) Tag(ctx context.Context, src, dst string) error {
	r, err := ParseRef(dst)
	if err != nil {
		return err
	}
	release, err := s.Lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	return s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
		m, err := s.match(idx, src)
		if err != nil {
			return false, fmt.Errorf("tag: %w", err)
		}
		setEntry(idx, m.desc, r)
		return true, nil
	})
}

// TagDescriptor names refs the manifest or index desc describes, whose blobs are already
// in Dir() (e.g. written by a BuildKit OCI export with an OutputStore over Dir()). It
// checks that every blob desc refers to is present before naming it. Hold a Lease from
// the start of such an export until TagDescriptor returns, so GC cannot delete the new
// blobs in between.
func (s *Store) TagDescriptor(ctx context.Context, desc v1.Descriptor, refs ...string) error {
	parsed := make([]name.Reference, 0, len(refs))
	for _, ref := range refs {
		r, err := ParseRef(ref)
		if err != nil {
			return err
		}
		parsed = append(parsed, r)
	}
	release, err := s.Lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	var blobs []v1.Hash
	if err := s.collectBlobs(desc.Digest, map[v1.Hash]bool{}, &blobs, 0); err != nil {
		return fmt.Errorf("tag %s: %w", desc.Digest, err)
	}
	if desc.MediaType == "" {
		raw, err := s.readBlob(desc.Digest)
		if err != nil {
			return err
		}
		desc.MediaType = sniffMediaType(raw)
	}
	if desc.Size == 0 {
		if fi, err := os.Stat(s.blobPath(desc.Digest)); err == nil {
			desc.Size = fi.Size()
		}
	}
	d := v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, Annotations: desc.Annotations}
	return s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
		for _, r := range parsed {
			setEntry(idx, d, r)
		}
		return len(parsed) > 0, nil
	})
}
