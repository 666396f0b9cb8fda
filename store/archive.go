package store

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
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
// The archive is read once, as a stream: blobs of an OCI layout go straight into the
// store. The files of a legacy docker-archive are kept in a temporary tar in the store
// while reading a stream (stdin); a regular file is read again in place instead.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]string, error) {
	release, err := s.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	f, isFile := r.(*os.File)
	if isFile {
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			isFile = false
		}
	}
	var spool *os.File
	if !isFile {
		if spool, err = createOwnedTemp(s.path(privateDir, tmpDir), "load"); err != nil {
			return nil, err
		}
		defer os.Remove(spool.Name())
		defer spool.Close()
	}
	rc, err := decompressed(ctxReader{ctx, r})
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer rc.Close()
	index, manifest, err := s.readArchive(ctx, rc, spool)
	if err != nil {
		return nil, err
	}
	switch {
	case index != nil:
		return s.loadOCIIndex(ctx, index)
	case manifest:
		src := f
		if spool != nil {
			src = spool
		}
		return s.loadDocker(ctx, func() (io.ReadCloser, error) { return openArchive(src) })
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

// readArchive reads a tar once: blobs/sha256/* go into the store, index.json is returned,
// manifest.json says it is a docker-archive; every other file is copied into spool (a tar)
// when spool is not nil.
func (s *Store) readArchive(ctx context.Context, r io.Reader, spool *os.File) (index []byte, manifest bool, err error) {
	tr := tar.NewReader(r)
	var tw *tar.Writer
	if spool != nil {
		tw = tar.NewWriter(spool)
	}
	entries := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if entries == 0 {
				return nil, false, fmt.Errorf("load: not a tar archive: %w", err)
			}
			return nil, false, fmt.Errorf("load: %w", err)
		}
		entries++
		p := path.Clean(h.Name)
		if p == indexFile {
			if index, err = io.ReadAll(io.LimitReader(tr, 64<<20)); err != nil {
				return nil, false, fmt.Errorf("load: %w", err)
			}
			continue
		}
		if dir, hexName := path.Split(p); h.Typeflag == tar.TypeReg && dir == "blobs/sha256/" && len(hexName) == 64 && hexLike(hexName) {
			want := v1.Hash{Algorithm: "sha256", Hex: hexName}
			if _, _, err := s.WriteBlob(ctx, want, h.Size, tr); err != nil {
				return nil, false, fmt.Errorf("load: %w", err)
			}
			continue
		}
		if p == "manifest.json" {
			manifest = true
		}
		if tw != nil {
			if err := tw.WriteHeader(h); err != nil {
				return nil, false, fmt.Errorf("load: %w", err)
			}
			if _, err := io.Copy(tw, tr); err != nil {
				return nil, false, fmt.Errorf("load: %w", err)
			}
		}
	}
	if tw != nil {
		if err := tw.Close(); err != nil {
			return nil, false, fmt.Errorf("load: %w", err)
		}
	}
	if err := syncDir(s.path("blobs", "sha256")); err != nil {
		return nil, false, err
	}
	return index, manifest, nil
}

// loadOCIIndex names the images of an archive's index.json, whose blobs are in the store.
func (s *Store) loadOCIIndex(ctx context.Context, index []byte) ([]string, error) {
	var in v1.IndexManifest
	if err := json.Unmarshal(index, &in); err != nil {
		return nil, fmt.Errorf("load: index.json: %w", err)
	}
	var names []string
	for _, d := range in.Manifests {
		var seen []v1.Hash
		if err := s.collectBlobs(d.Digest, map[v1.Hash]bool{}, &seen, 0); err != nil {
			return nil, fmt.Errorf("load: the archive is incomplete: %w", err)
		}
		n := archiveName(d)
		err := s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
			e := d
			e.Annotations = maps.Clone(d.Annotations)
			delete(e.Annotations, AnnotationImageName)
			delete(e.Annotations, AnnotationRefName)
			if n != "" {
				r, err := name.ParseReference(n)
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

// archiveName is the normalized name of an archive's index.json entry, or "": the
// io.containerd.image.name annotation, else a ref.name that is a whole reference (as
// podman and skopeo write); a ref.name that is only a tag names nothing.
func archiveName(d v1.Descriptor) string {
	return entryName(d)
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
			tag, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("load: tag %q: %w", t, err)
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
