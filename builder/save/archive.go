package save

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cluster-image/sealos/builder/detect"
)

// archiveWriter copies an image read from an archive into one repository of the layout.
type archiveWriter struct {
	l                Layout
	repo             string
	manifests, blobs int
	size             int64
}

// saveArchive writes the image of t's archive (images/skopeo/tar.txt) into the registry
// directory under t's repository and tag, the whole of it: an archive holds what its
// author chose, already on disk, so no platform is filtered out.
func (s *saver) saveArchive(ctx context.Context, t *target) (Saved, error) {
	a := t.img.Archive
	w := &archiveWriter{l: s.layout, repo: t.repo}
	var top v1.Hash
	var mt types.MediaType
	var err error
	switch a.Transport {
	case detect.DockerArchive:
		var tag *name.Tag
		if a.Ref != "" {
			tg, perr := name.NewTag(a.Ref)
			if perr != nil {
				return Saved{}, fmt.Errorf("%s %s: image %q: %w", a.Transport, a.Path, a.Ref, perr)
			}
			tag = &tg
		}
		img, oerr := tarball.ImageFromPath(a.Path, tag)
		if oerr != nil {
			return Saved{}, fmt.Errorf("read %s %s: %w", a.Transport, a.Path, oerr)
		}
		top, mt, err = w.image(ctx, img)
	case detect.OCIArchive:
		top, mt, err = w.ociArchive(ctx, a)
	default:
		err = fmt.Errorf("unknown archive transport %q", a.Transport)
	}
	if err != nil {
		return Saved{}, fmt.Errorf("%s %s: %w", a.Transport, a.Path, err)
	}
	if t.tag != "" {
		if err := writeLink(s.layout.TagIndexPath(t.repo, t.tag, top), top); err != nil {
			return Saved{}, err
		}
		if err := writeLink(s.layout.TagCurrentPath(t.repo, t.tag), top); err != nil {
			return Saved{}, err
		}
	}
	s.log.Info("saved image from archive", "image", t.img.Ref, "archive", a.Path, "digest", top.String())
	return Saved{
		Ref: t.img.Ref, Repository: t.repo, Tag: t.tag, Digest: top.String(), MediaType: string(mt),
		Manifests: w.manifests, Blobs: w.blobs, Size: w.size, Sources: t.img.Sources,
	}, nil
}

// ociArchive unpacks the archive (a tar of an OCI layout) into a temporary directory and
// writes the manifest its index names: the only one, or the one whose ref.name is a.Ref.
func (w *archiveWriter) ociArchive(ctx context.Context, a *detect.Archive) (v1.Hash, types.MediaType, error) {
	tmp, err := os.MkdirTemp("", "sealos-oci-archive-")
	if err != nil {
		return v1.Hash{}, "", err
	}
	defer os.RemoveAll(tmp)
	if err := untar(a.Path, tmp); err != nil {
		return v1.Hash{}, "", err
	}
	idx, err := layout.ImageIndexFromPath(tmp)
	if err != nil {
		return v1.Hash{}, "", fmt.Errorf("not an OCI layout: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, "", err
	}
	var chosen []v1.Descriptor
	var names []string
	for _, d := range im.Manifests {
		n := d.Annotations[ocispec.AnnotationRefName]
		names = append(names, n)
		if a.Ref == "" || n == a.Ref {
			chosen = append(chosen, d)
		}
	}
	switch {
	case len(chosen) == 0:
		return v1.Hash{}, "", fmt.Errorf("no image named %q in it (it has %s)", a.Ref, strings.Join(names, ", "))
	case len(chosen) > 1:
		return v1.Hash{}, "", fmt.Errorf("it holds %d images (%s): name one as oci-archive:PATH:REF@NAME", len(chosen), strings.Join(names, ", "))
	}
	return w.descriptor(ctx, idx, chosen[0])
}

// descriptor writes the manifest d of idx and everything it references.
func (w *archiveWriter) descriptor(ctx context.Context, idx v1.ImageIndex, d v1.Descriptor) (v1.Hash, types.MediaType, error) {
	switch {
	case d.MediaType.IsIndex():
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return v1.Hash{}, "", err
		}
		return w.index(ctx, child)
	case d.MediaType.IsImage():
		img, err := idx.Image(d.Digest)
		if err != nil {
			return v1.Hash{}, "", err
		}
		return w.image(ctx, img)
	}
	return v1.Hash{}, "", fmt.Errorf("manifest %s has media type %s, not an image or an index", d.Digest, d.MediaType)
}

func (w *archiveWriter) index(ctx context.Context, idx v1.ImageIndex) (v1.Hash, types.MediaType, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, "", err
	}
	for _, c := range im.Manifests {
		if !c.MediaType.IsIndex() && !c.MediaType.IsImage() {
			continue
		}
		if _, _, err := w.descriptor(ctx, idx, c); err != nil {
			return v1.Hash{}, "", err
		}
	}
	return w.manifest(idx)
}

func (w *archiveWriter) image(ctx context.Context, img v1.Image) (v1.Hash, types.MediaType, error) {
	cfgName, err := img.ConfigName()
	if err != nil {
		return v1.Hash{}, "", err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, "", err
	}
	if err := w.blob(cfgName, func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(cfg))), nil }); err != nil {
		return v1.Hash{}, "", fmt.Errorf("config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, "", err
	}
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return v1.Hash{}, "", err
		}
		d, err := l.Digest()
		if err != nil {
			return v1.Hash{}, "", err
		}
		if err := w.blob(d, l.Compressed); err != nil {
			return v1.Hash{}, "", fmt.Errorf("layer %s: %w", d, err)
		}
	}
	return w.manifest(img)
}

type rawManifest interface {
	RawManifest() ([]byte, error)
	MediaType() (types.MediaType, error)
}

// manifest writes m's manifest as a blob and makes it readable in the repository.
func (w *archiveWriter) manifest(m rawManifest) (v1.Hash, types.MediaType, error) {
	raw, err := m.RawManifest()
	if err != nil {
		return v1.Hash{}, "", err
	}
	mt, err := m.MediaType()
	if err != nil {
		return v1.Hash{}, "", err
	}
	d, _, err := v1.SHA256(strings.NewReader(string(raw)))
	if err != nil {
		return v1.Hash{}, "", err
	}
	path := w.l.BlobPath(d)
	if !w.l.HasBlob(d, int64(len(raw))) {
		if err := writeFileAtomic(path, raw); err != nil {
			return v1.Hash{}, "", err
		}
	}
	w.manifests++
	w.size += int64(len(raw))
	return d, mt, writeLink(w.l.RevisionLinkPath(w.repo, d), d)
}

// blob makes blob d present (checking the content against d) and readable in the repository.
func (w *archiveWriter) blob(d v1.Hash, open func() (io.ReadCloser, error)) error {
	w.blobs++
	if st, err := os.Stat(w.l.BlobPath(d)); err == nil && st.Mode().IsRegular() {
		w.size += st.Size()
		return writeLink(w.l.LayerLinkPath(w.repo, d), d)
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	dst := w.l.BlobPath(d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); d.Algorithm != "sha256" || got != d.Hex {
		return fmt.Errorf("content has digest sha256:%s, not %s: the archive is damaged", got, d)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return err
	}
	w.size += n
	return writeLink(w.l.LayerLinkPath(w.repo, d), d)
}

// untar extracts the regular files and directories of the tar file src under dir,
// refusing names that leave it.
func untar(src, dir string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", src, err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			if p == dir {
				continue
			}
			return fmt.Errorf("read %s: entry %q leaves the archive", src, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// ErrNoRegistry is wrapped by CheckRegistryDir's error.
var ErrNoRegistry = errors.New("no registry/ directory in the build context")

// CheckRegistryDir is for a Kubefile that copies registry/ by name when detection found
// nothing to save: it fails, saying what detection reads, unless dir/registry exists, so
// the build does not stop later on BuildKit's bare "not found".
func CheckRegistryDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "registry")); err == nil {
		return nil
	}
	return fmt.Errorf("%w: the Kubefile copies registry/, but %s has none and no container image was found to save into it; images are detected in %s; name the images there, or create registry/ yourself, or drop the COPY of registry",
		ErrNoRegistry, dir, detect.Scanned)
}
