package store

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Archive formats for Save.
const (
	// FormatOCIArchive is a tar of an OCI image layout; index.json names each image with
	// io.containerd.image.name (full reference) and org.opencontainers.image.ref.name
	// (tag). Indexes are saved whole. Loading it back keeps every digest.
	FormatOCIArchive = "oci-archive"
	// FormatDockerArchive is the `docker save` format (manifest.json with RepoTags). It
	// holds single images only: an index is saved as its host-platform image. Loading
	// it keeps image IDs (config digests) but the manifest is rebuilt, so its digest may
	// change, as with docker.
	FormatDockerArchive = "docker-archive"
)

// Formats lists the archive formats Save writes.
var Formats = []string{FormatOCIArchive, FormatDockerArchive}

// Save writes the images refs name to w as an archive in format (FormatOCIArchive when
// empty). refs may use any form Resolve takes.
func (s *Store) Save(ctx context.Context, w io.Writer, format string, refs ...string) error {
	if len(refs) == 0 {
		return errors.New("save: no image given")
	}
	release, err := s.Lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	switch format {
	case "", FormatOCIArchive:
		return s.saveOCI(ctx, w, refs)
	case FormatDockerArchive:
		return s.saveDocker(ctx, w, refs)
	}
	return fmt.Errorf("save: unknown format %q: want one of %s", format, strings.Join(Formats, ", "))
}

// savedName is the name an archive gives the image ref: the full reference when ref is a
// name, "" when it is an ID or digest.
func (s *Store) savedName(ref string, m matchResult, idx *v1.IndexManifest) string {
	if m.byName {
		return entryName(idx.Manifests[m.named])
	}
	return ""
}

func (s *Store) saveOCI(ctx context.Context, w io.Writer, refs []string) error {
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	out := emptyIndex()
	var blobs []v1.Hash
	seen := map[v1.Hash]bool{}
	for _, ref := range refs {
		m, err := s.match(idx, ref)
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		d := m.desc
		d.Annotations = maps.Clone(d.Annotations)
		delete(d.Annotations, AnnotationImageName)
		delete(d.Annotations, AnnotationRefName)
		if n := s.savedName(ref, m, idx); n != "" {
			r, err := name.ParseReference(n)
			if err != nil {
				return err
			}
			setEntry(out, d, r)
		} else if len(sameDigest(out, d.Digest)) == 0 {
			if len(d.Annotations) == 0 {
				d.Annotations = nil
			}
			out.Manifests = append(out.Manifests, d)
		}
		if err := s.collectBlobs(d.Digest, seen, &blobs, 0); err != nil {
			return fmt.Errorf("save %s: %w", ref, err)
		}
	}
	ib, err := json.Marshal(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{layoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {indexFile, ib}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	for _, h := range blobs {
		if err := s.copyBlobToTar(ctx, tw, h, epoch); err != nil {
			return err
		}
	}
	return tw.Close()
}

func (s *Store) copyBlobToTar(ctx context.Context, tw *tar.Writer, h v1.Hash, mtime time.Time) error {
	f, err := os.Open(s.blobPath(h))
	if err != nil {
		return fmt.Errorf("save blob %s: %w", h, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: "blobs/" + h.Algorithm + "/" + h.Hex, Mode: 0o644, Size: fi.Size(), ModTime: mtime}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, ctxReader{ctx, f}); err != nil {
		return fmt.Errorf("save blob %s: %w", h, err)
	}
	return nil
}

// collectBlobs appends h and every blob it refers to, children first seen first, failing
// when one is missing.
func (s *Store) collectBlobs(h v1.Hash, seen map[v1.Hash]bool, out *[]v1.Hash, depth int) error {
	if seen[h] {
		return nil
	}
	if depth > 16 {
		return errors.New("manifests nested too deep")
	}
	raw, err := s.readBlob(h)
	if err != nil {
		return err
	}
	seen[h] = true
	*out = append(*out, h)
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("manifest %s: %w", h, err)
	}
	var leaves []v1.Descriptor
	if m.Config != nil {
		leaves = append(leaves, *m.Config)
	}
	for _, d := range append(leaves, m.Layers...) {
		if seen[d.Digest] {
			continue
		}
		if !s.HasBlob(d.Digest) {
			if !d.MediaType.IsDistributable() {
				continue
			}
			return fmt.Errorf("blob %s of %s: %w", d.Digest, h, ErrBlobMissing)
		}
		seen[d.Digest] = true
		*out = append(*out, d.Digest)
	}
	for _, c := range m.Manifests {
		if err := s.collectBlobs(c.Digest, seen, out, depth+1); err != nil {
			return fmt.Errorf("%w (a partly pulled multi-platform image cannot be saved whole; save one platform by digest)", err)
		}
	}
	return nil
}

func (s *Store) saveDocker(ctx context.Context, w io.Writer, refs []string) error {
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	byRef := map[name.Reference]v1.Image{}
	byDigest := map[v1.Hash]v1.Image{} // tarball dedups by image value
	for _, ref := range refs {
		m, err := s.match(idx, ref)
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		img, err := s.imageFor(m.desc)
		if err != nil {
			return fmt.Errorf("save %s: %w", ref, err)
		}
		dg, err := img.Digest()
		if err != nil {
			return err
		}
		if prev, ok := byDigest[dg]; ok {
			img = prev
		}
		byDigest[dg] = img
		var r name.Reference
		if n := s.savedName(ref, m, idx); n != "" {
			pr, err := name.ParseReference(n)
			if err != nil {
				return err
			}
			if _, isTag := pr.(name.Tag); isTag {
				// RepoTags as docker writes them: "app:v1", "user/app:v1", "host/x:y".
				r, err = name.NewTag(DisplayName(n))
				if err != nil {
					return err
				}
			}
		}
		if r == nil {
			d, err := img.Digest()
			if err != nil {
				return err
			}
			// A digest reference: the image goes in without RepoTags.
			if r, err = name.NewDigest("sealos.invalid/untagged@" + d.String()); err != nil {
				return err
			}
		}
		byRef[r] = img
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return tarball.MultiRefWrite(byRef, w)
}

// Load imports the images of an oci-archive or docker-archive (optionally gzipped) read
// from r, and returns the names it gave them (a digest for an image without a name).
//
// Archives are not trusted: a name that is not a valid image reference is refused (with
// the entry that carries it) before anything is written; only the blobs that index.json
// (or manifest.json) reaches are written, each checked against the size and digest its
// descriptor declares as it is read, so an archive's other entries, however big, are
// skipped without being stored; and when a load fails, the blobs it wrote that no image
// refers to are removed again.
//
// A regular file is read in place, a few times (once to find index.json and the small
// blobs, manifests among them; once more per level of manifests not found that way; once
// to store the blobs). Any other reader (stdin) is first copied as it is, still
// compressed, into a temporary file in the store, which costs the archive's own size.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]string, error) {
	f, isFile := r.(*os.File)
	if isFile {
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			isFile = false
		}
	}
	if !isFile {
		spool, err := createOwnedTemp(s.path(privateDir, tmpDir), "load")
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		defer os.Remove(spool.Name())
		defer spool.Close()
		if _, err := io.Copy(spool, ctxReader{ctx, r}); err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		f = spool
	}
	if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
		return nil, errors.New("load: the input is empty: give a docker-archive or oci-archive (sealos save writes one)")
	}
	written := &writtenSet{}
	names, err := s.loadLeased(withWritten(ctx, written), f)
	if err != nil {
		s.dropUnreferenced(written.list())
	}
	return names, err
}

func (s *Store) loadLeased(ctx context.Context, f *os.File) ([]string, error) {
	release, err := s.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	open := func() (io.ReadCloser, error) { return openArchive(f) }
	sc, err := scanArchive(ctx, open)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	switch {
	case sc.index != nil:
		return s.loadOCI(ctx, open, sc)
	case sc.manifest != nil:
		if err := checkDockerManifest(sc); err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		return s.loadDocker(ctx, open)
	}
	return nil, errors.New("load: the archive is neither an oci-archive (index.json) nor a docker-archive (manifest.json)")
}

// decompressed returns r, gunzipped when it starts with the gzip magic.
func decompressed(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return io.NopCloser(br), nil
}

// openArchive returns a fresh reader of the tar in f, gunzipping when needed.
func openArchive(f *os.File) (io.ReadCloser, error) {
	return decompressed(io.NewSectionReader(f, 0, 1<<62))
}

// Bounds on what Load keeps in memory.
const (
	maxControlFile = 16 << 20 // index.json, manifest.json
	smallBlob      = 1 << 20  // blobs read into memory on the first pass...
	smallBlobTotal = 64 << 20 // ...up to this much in all
)

// archiveScan is what the first pass over an archive finds.
type archiveScan struct {
	index    []byte             // index.json, if any
	manifest []byte             // manifest.json, if any
	files    map[string]int64   // size of every regular file, by cleaned name
	blobs    map[v1.Hash]int64  // size of every blobs/sha256/<hex> entry
	small    map[v1.Hash][]byte // content of small blobs whose digest matched
}

// scanArchive reads the archive once without writing anything.
func scanArchive(ctx context.Context, open func() (io.ReadCloser, error)) (*archiveScan, error) {
	sc := &archiveScan{files: map[string]int64{}, blobs: map[v1.Hash]int64{}, small: map[v1.Hash][]byte{}}
	var kept int64
	err := walkArchive(ctx, open, func(p string, h *tar.Header, tr io.Reader) error {
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		sc.files[p] = h.Size
		switch p {
		case indexFile, "manifest.json":
			if h.Size > maxControlFile {
				return fmt.Errorf("%s is %d bytes, more than the %d allowed", p, h.Size, maxControlFile)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if p == indexFile {
				sc.index = b
			} else {
				sc.manifest = b
			}
			return nil
		}
		want, ok := blobEntry(p)
		if !ok {
			return nil
		}
		if _, dup := sc.blobs[want]; !dup {
			sc.blobs[want] = h.Size
		}
		if h.Size <= smallBlob && kept+h.Size <= smallBlobTotal && sc.small[want] == nil {
			b, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if digestOf(b) == want {
				sc.small[want] = b
				kept += h.Size
			}
		}
		return nil
	})
	return sc, err
}

// walkArchive calls fn for each entry of the tar open returns.
func walkArchive(ctx context.Context, open func() (io.ReadCloser, error), fn func(p string, h *tar.Header, r io.Reader) error) error {
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(ctxReader{ctx, rc})
	for entries := 0; ; entries++ {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if entries == 0 {
				return fmt.Errorf("not a tar archive: %w", err)
			}
			return err
		}
		if err := fn(path.Clean(h.Name), h, tr); err != nil {
			return err
		}
	}
}

// blobEntry reports whether p names a blob of an OCI layout, and which.
func blobEntry(p string) (v1.Hash, bool) {
	dir, hexName := path.Split(p)
	if dir != "blobs/sha256/" || len(hexName) != 64 || !hexLike(hexName) {
		return v1.Hash{}, false
	}
	return v1.Hash{Algorithm: "sha256", Hex: hexName}, true
}

func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// loadOCI loads an OCI layout: names first, then the blobs index.json reaches, then the
// names are given.
func (s *Store) loadOCI(ctx context.Context, open func() (io.ReadCloser, error), sc *archiveScan) ([]string, error) {
	var in v1.IndexManifest
	if err := json.Unmarshal(sc.index, &in); err != nil {
		return nil, fmt.Errorf("load: index.json: %w", err)
	}
	entryNames := make([]string, len(in.Manifests))
	for i, d := range in.Manifests {
		n, err := archiveName(d)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		entryNames[i] = n
	}
	need, manifests, err := s.reachable(ctx, open, sc, in.Manifests)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := s.storeReachable(ctx, open, sc, need, manifests); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var names []string
	for i, d := range in.Manifests {
		var seen []v1.Hash
		if err := s.collectBlobs(d.Digest, map[v1.Hash]bool{}, &seen, 0); err != nil {
			return nil, fmt.Errorf("load: the archive is incomplete: %w", err)
		}
		n := entryNames[i]
		err := s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
			e := d
			e.Annotations = maps.Clone(d.Annotations)
			delete(e.Annotations, AnnotationImageName)
			delete(e.Annotations, AnnotationRefName)
			if n != "" {
				r, err := ParseRef(n)
				if err != nil {
					return false, err
				}
				setEntry(idx, e, r)
				return true, nil
			}
			if len(sameDigest(idx, e.Digest)) > 0 {
				return false, nil
			}
			if len(e.Annotations) == 0 {
				e.Annotations = nil
			}
			idx.Manifests = append(idx.Manifests, e)
			return true, nil
		})
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		if n == "" {
			n = d.Digest.String()
		}
		names = append(names, n)
	}
	return names, nil
}

// reachable walks the manifests from roots and returns every blob they reach with its
// declared size, and the content of the manifests and indexes among them. It fails when
// a blob is neither in the archive nor in the store (but for non-distributable layers),
// or when the archive's entry has another size than its descriptor declares.
func (s *Store) reachable(ctx context.Context, open func() (io.ReadCloser, error), sc *archiveScan, roots []v1.Descriptor) (map[v1.Hash]int64, map[v1.Hash][]byte, error) {
	need := map[v1.Hash]int64{}
	manifests := map[v1.Hash][]byte{}
	type item struct {
		d        v1.Descriptor
		manifest bool
		parent   string
	}
	var queue []item
	for _, d := range roots {
		queue = append(queue, item{d, true, "index.json"})
	}
	for depth := 0; len(queue) > 0; depth++ {
		if depth > 16 {
			return nil, nil, errors.New("manifests nested too deep")
		}
		var parse []v1.Hash
		var fetch = map[v1.Hash]int64{}
		for _, it := range queue {
			d := it.d
			if d.Digest.Algorithm != "sha256" || len(d.Digest.Hex) != 64 || !hexLike(d.Digest.Hex) {
				return nil, nil, fmt.Errorf("%s refers to %q, not a sha256 digest", it.parent, d.Digest)
			}
			if d.Size < 0 {
				return nil, nil, fmt.Errorf("%s gives blob %s a negative size", it.parent, d.Digest)
			}
			if prev, ok := need[d.Digest]; ok {
				if prev != d.Size {
					return nil, nil, fmt.Errorf("blob %s is declared with sizes %d and %d", d.Digest, prev, d.Size)
				}
				continue
			}
			size, inArchive := sc.blobs[d.Digest]
			switch {
			case inArchive && size != d.Size:
				return nil, nil, fmt.Errorf("blob %s is %d bytes in the archive, but %s declares %d", d.Digest, size, it.parent, d.Size)
			case !inArchive && !s.HasBlob(d.Digest):
				if !it.manifest && !d.MediaType.IsDistributable() {
					continue // a foreign layer: it lives elsewhere
				}
				return nil, nil, fmt.Errorf("the archive is incomplete: blob %s of %s is missing: %w", d.Digest, it.parent, ErrBlobMissing)
			}
			need[d.Digest] = d.Size
			if !it.manifest {
				continue
			}
			if d.Size > maxManifestSize {
				return nil, nil, fmt.Errorf("manifest %s is %d bytes, more than the %d allowed", d.Digest, d.Size, maxManifestSize)
			}
			parse = append(parse, d.Digest)
			if b, ok := sc.small[d.Digest]; ok {
				manifests[d.Digest] = b
			} else if !inArchive {
				b, err := s.readBlob(d.Digest)
				if err != nil {
					return nil, nil, err
				}
				manifests[d.Digest] = b
			} else {
				fetch[d.Digest] = d.Size
			}
		}
		if len(fetch) > 0 {
			// Manifests the first pass did not keep: read them now, and nothing else.
			err := walkArchive(ctx, open, func(p string, h *tar.Header, r io.Reader) error {
				want, ok := blobEntry(p)
				if !ok || h.Typeflag != tar.TypeReg || manifests[want] != nil || fetch[want] != h.Size {
					return nil
				}
				b, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				if digestOf(b) != want {
					return fmt.Errorf("blob %s: the archive's content has another digest", want)
				}
				manifests[want] = b
				return nil
			})
			if err != nil {
				return nil, nil, err
			}
		}
		queue = queue[:0:0]
		for _, h := range parse {
			b, ok := manifests[h]
			if !ok {
				return nil, nil, fmt.Errorf("manifest %s: the archive's content does not match its digest", h)
			}
			var m struct {
				Config    *v1.Descriptor  `json:"config"`
				Layers    []v1.Descriptor `json:"layers"`
				Blobs     []v1.Descriptor `json:"blobs"`
				Manifests []v1.Descriptor `json:"manifests"`
			}
			if err := json.Unmarshal(b, &m); err != nil {
				return nil, nil, fmt.Errorf("manifest %s: %w", h, err)
			}
			parent := "manifest " + h.String()
			if m.Config != nil {
				queue = append(queue, item{*m.Config, false, parent})
			}
			for _, l := range append(m.Layers, m.Blobs...) {
				queue = append(queue, item{l, false, parent})
			}
			for _, c := range m.Manifests {
				queue = append(queue, item{c, true, parent})
			}
		}
	}
	return need, manifests, nil
}

// storeReachable writes the blobs in need that the store lacks: from memory when the
// scan kept them, else read from the archive once more, each entry read no further than
// its declared size and checked against its digest. Other entries are skipped.
func (s *Store) storeReachable(ctx context.Context, open func() (io.ReadCloser, error), sc *archiveScan, need map[v1.Hash]int64, manifests map[v1.Hash][]byte) error {
	pending := map[v1.Hash]int64{}
	for h, size := range need {
		if s.HasBlob(h) {
			continue
		}
		b := manifests[h]
		if b == nil {
			b = sc.small[h]
		}
		if b != nil {
			if _, _, err := s.WriteBlob(ctx, h, size, bytes.NewReader(b)); err != nil {
				return err
			}
			continue
		}
		pending[h] = size
	}
	if len(pending) > 0 {
		err := walkArchive(ctx, open, func(p string, h *tar.Header, r io.Reader) error {
			want, ok := blobEntry(p)
			if !ok || h.Typeflag != tar.TypeReg {
				return nil
			}
			size, ok := pending[want]
			if !ok || h.Size != size {
				return nil
			}
			if _, _, err := s.WriteBlob(ctx, want, size, r); err != nil {
				return err
			}
			delete(pending, want)
			return nil
		})
		if err != nil {
			return err
		}
	}
	for h := range pending {
		return fmt.Errorf("blob %s: not found in the archive", h)
	}
	return syncDir(s.path("blobs", "sha256"))
}

// archiveName is the normalized name of an archive's index.json entry, or "": the
// io.containerd.image.name annotation, else a ref.name that is a whole reference (as
// podman and skopeo write); a ref.name that is only a tag (or "@digest") names nothing.
// A name that is not a valid image reference is an error.
func archiveName(d v1.Descriptor) (string, error) {
	n, key := d.Annotations[AnnotationImageName], AnnotationImageName
	if n == "" {
		n, key = d.Annotations[AnnotationRefName], AnnotationRefName
		if !strings.ContainsAny(n, "/:@") || strings.HasPrefix(n, "@") {
			return "", nil
		}
	}
	norm, err := NormalizeRef(n)
	if err != nil {
		return "", fmt.Errorf("index.json entry %s: its %s %q is not a valid image reference", d.Digest, key, bounded(n))
	}
	return norm, nil
}

// bounded is s cut to a length fit for an error message.
func bounded(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}

// checkDockerManifest checks a docker-archive's manifest.json before anything is written:
// every name must be a valid reference, and every file it names must be in the archive
// (a config no bigger than a manifest may be).
func checkDockerManifest(sc *archiveScan) error {
	var mf tarball.Manifest
	if err := json.Unmarshal(sc.manifest, &mf); err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}
	for i, e := range mf {
		for _, t := range e.RepoTags {
			if _, err := NormalizeRef(t); err != nil {
				return fmt.Errorf("manifest.json entry %d: RepoTags %q is not a valid image reference", i, bounded(t))
			}
		}
		size, ok := sc.files[path.Clean(e.Config)]
		if !ok {
			return fmt.Errorf("manifest.json entry %d: config %q is not in the archive", i, bounded(e.Config))
		}
		if size > maxManifestSize {
			return fmt.Errorf("manifest.json entry %d: config %q is %d bytes, more than the %d allowed", i, bounded(e.Config), size, maxManifestSize)
		}
		for _, l := range e.Layers {
			if _, ok := sc.files[path.Clean(l)]; !ok {
				return fmt.Errorf("manifest.json entry %d: layer %q is not in the archive", i, bounded(l))
			}
		}
	}
	return nil
}

func (s *Store) loadDocker(ctx context.Context, opener tarball.Opener) ([]string, error) {
	mf, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var names []string
	for i, e := range mf {
		var img v1.Image
		if len(e.RepoTags) == 0 {
			if len(mf) != 1 {
				img, err = tarball.Image(singleEntry(opener, mf, i), nil)
			} else {
				img, err = tarball.Image(opener, nil)
			}
			if err != nil {
				return nil, fmt.Errorf("load: image %s: %w", e.Config, err)
			}
			d, err := s.writeUnnamed(ctx, img)
			if err != nil {
				return nil, fmt.Errorf("load: image %s: %w", e.Config, err)
			}
			names = append(names, d.String())
			continue
		}
		first := ""
		for _, t := range e.RepoTags {
			if _, err := NormalizeRef(t); err != nil {
				return nil, fmt.Errorf("load: RepoTags %q is not a valid image reference", bounded(t))
			}
			tag, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("load: tag %q: %w", bounded(t), err)
			}
			full := refString(tag)
			if first == "" {
				img, err = tarball.Image(opener, &tag)
				if err != nil {
					return nil, fmt.Errorf("load %s: %w", t, err)
				}
				if err := s.WriteImage(ctx, full, img); err != nil {
					return nil, fmt.Errorf("load: %w", err)
				}
				first = full
			} else if err := s.Tag(ctx, first, full); err != nil {
				return nil, fmt.Errorf("load: %w", err)
			}
			names = append(names, full)
		}
	}
	return names, nil
}

// singleEntry opens the archive as if manifest.json held only entry i, so tarball.Image
// can read an untagged image of a multi-image archive.
func singleEntry(opener tarball.Opener, mf tarball.Manifest, i int) tarball.Opener {
	one, _ := json.Marshal(tarball.Manifest{mf[i]})
	return func() (io.ReadCloser, error) {
		rc, err := opener()
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		go func() {
			defer rc.Close()
			tr := tar.NewReader(rc)
			tw := tar.NewWriter(pw)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					pw.CloseWithError(err)
					return
				}
				if path.Clean(h.Name) == "manifest.json" {
					h.Size = int64(len(one))
					if err := tw.WriteHeader(h); err != nil {
						pw.CloseWithError(err)
						return
					}
					_, err = tw.Write(one)
				} else {
					if err = tw.WriteHeader(h); err == nil {
						_, err = io.Copy(tw, tr)
					}
				}
				if err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			pw.CloseWithError(tw.Close())
		}()
		return pr, nil
	}
}

// writeUnnamed stores img without a name (listed as <none>) and returns its digest.
func (s *Store) writeUnnamed(ctx context.Context, img v1.Image) (v1.Hash, error) {
	desc, err := s.writeImageBlobs(ctx, img)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := syncDir(s.path("blobs", "sha256")); err != nil {
		return v1.Hash{}, err
	}
	return desc.Digest, s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
		if len(sameDigest(idx, desc.Digest)) > 0 {
			return false, nil
		}
		idx.Manifests = append(idx.Manifests, desc)
		return true, nil
	})
}
