package save

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Layout is a docker-distribution filesystem storage tree (what `registry serve
// filesystem DIR` serves): blobs under docker/registry/v2/blobs, and per repository the
// links that make blobs, manifests and tags visible in it.
type Layout struct {
	Root string
}

func (l Layout) v2() string { return filepath.Join(l.Root, "docker", "registry", "v2") }

// BlobPath is where the content of blob d lives.
func (l Layout) BlobPath(d v1.Hash) string {
	return filepath.Join(l.v2(), "blobs", d.Algorithm, d.Hex[:2], d.Hex, "data")
}

func (l Layout) repo(repo string) string {
	return filepath.Join(l.v2(), "repositories", filepath.FromSlash(repo))
}

// LayerLinkPath makes blob d (a layer or config) readable in repo.
func (l Layout) LayerLinkPath(repo string, d v1.Hash) string {
	return filepath.Join(l.repo(repo), "_layers", d.Algorithm, d.Hex, "link")
}

// RevisionLinkPath makes manifest d readable in repo.
func (l Layout) RevisionLinkPath(repo string, d v1.Hash) string {
	return filepath.Join(l.repo(repo), "_manifests", "revisions", d.Algorithm, d.Hex, "link")
}

// TagCurrentPath holds the digest tag points at in repo.
func (l Layout) TagCurrentPath(repo, tag string) string {
	return filepath.Join(l.repo(repo), "_manifests", "tags", tag, "current", "link")
}

// TagIndexPath records that tag has pointed at d.
func (l Layout) TagIndexPath(repo, tag string, d v1.Hash) string {
	return filepath.Join(l.repo(repo), "_manifests", "tags", tag, "index", d.Algorithm, d.Hex, "link")
}

// TagDigest returns the digest tag points at in repo, or ok=false if there is no such tag.
func (l Layout) TagDigest(repo, tag string) (v1.Hash, bool) {
	b, err := os.ReadFile(l.TagCurrentPath(repo, tag))
	if err != nil {
		return v1.Hash{}, false
	}
	h, err := v1.NewHash(strings.TrimSpace(string(b)))
	return h, err == nil
}

// HasBlob says whether blob d is present with the given size (size < 0: any size).
func (l Layout) HasBlob(d v1.Hash, size int64) bool {
	st, err := os.Stat(l.BlobPath(d))
	return err == nil && st.Mode().IsRegular() && (size < 0 || st.Size() == size)
}

// writeLink writes a link file (content "sha256:<hex>") unless it already says so.
func writeLink(p string, d v1.Hash) error {
	return writeFileAtomic(p, []byte(d.String()))
}

// writeFileAtomic writes data to p through a temporary file and a rename, skipping the write
// when p already holds exactly data.
func writeFileAtomic(p string, data []byte) error {
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// placeFile makes dst a copy of src that never shares writes with it: a hard link when
// both are on one filesystem (blobs are immutable), else a reflink, else a plain copy.
// dst appears atomically.
func placeFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	err := os.Link(src, dst)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := out.Name()
	if cerr := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); cerr != nil {
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			os.Remove(tmp)
			return fmt.Errorf("copy %s: %w", src, err)
		}
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	os.Chmod(tmp, 0o644)
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
