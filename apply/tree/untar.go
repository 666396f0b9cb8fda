// Package tree is a file tree on this machine that the apply engine ships: unpacked from
// image layers without ever writing outside its directory, its templates rendered, and
// described by a content manifest (path -> type, mode, sha256) so only differences move.
package tree

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrUnsafePath is wrapped when an archive entry would land outside the target directory.
var ErrUnsafePath = errors.New("unsafe path in archive")

// Untar extracts the tar stream r into dir, which must be empty or absent. It refuses
// absolute names and names with ".." (ErrUnsafePath), never follows a symlink it created
// (an entry below a symlink is shadowed by it and skipped, as in a flattened image), and
// keeps hard links inside dir. Ownership is not restored; permission bits are. Device
// nodes and FIFOs are skipped.
//
// Whiteout entries (".wh.*", OCI layer deletions) are skipped: flatten layers first
// (mutate.Extract) when there are several.
func Untar(r io.Reader, dir string) error {
	_, err := UntarManifest(r, dir)
	return err
}

// UntarManifest is Untar that also returns the manifest of what it wrote, hashing files
// as they are written (the same as Scan(dir) would return, without reading dir again).
func UntarManifest(r io.Reader, dir string) (*Manifest, error) {
	entries := map[string]Entry{}
	err := untar(r, dir, entries)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Entries: make([]Entry, 0, len(entries))}
	for _, e := range entries {
		m.Entries = append(m.Entries, e)
	}
	m.sort()
	return m, nil
}

func untar(r io.Reader, dir string, entries map[string]Entry) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	nondir := map[string]bool{} // paths we created that are not directories
	tr := tar.NewReader(r)
	type dirMode struct {
		p    string
		mode os.FileMode
	}
	var dirs []dirMode
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		rel, err := cleanName(h.Name)
		if err != nil {
			return err
		}
		if rel == "" || strings.HasPrefix(path.Base(rel), ".wh.") {
			continue
		}
		if shadowed(rel, nondir) {
			continue
		}
		target := filepath.Join(dir, filepath.FromSlash(rel))
		if err := mkParents(dir, rel, entries); err != nil {
			return err
		}
		mode := os.FileMode(h.Mode & 0o7777)
		switch h.Typeflag {
		case tar.TypeDir:
			if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
				continue // an upper layer put a file here
			}
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			dirs = append(dirs, dirMode{target, mode | 0o700})
			entries[rel] = Entry{Path: rel, Type: TypeDir, Mode: uint32(mode | 0o700)}
		case tar.TypeReg, tar.TypeRegA:
			if _, err := os.Lstat(target); err == nil {
				continue // already extracted from an upper layer
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(io.MultiWriter(f, h), tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Chmod(target, mode)
			}
			if err != nil {
				return fmt.Errorf("extract %s: %w", rel, err)
			}
			nondir[rel] = true
			entries[rel] = Entry{Path: rel, Type: TypeFile, Mode: uint32(mode), Size: n, Sum: hex.EncodeToString(h.Sum(nil))}
		case tar.TypeSymlink:
			if _, err := os.Lstat(target); err == nil {
				continue
			}
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
			nondir[rel] = true
			entries[rel] = Entry{Path: rel, Type: TypeSymlink, Mode: 0o777, Link: h.Linkname}
		case tar.TypeLink:
			lrel, err := cleanName(h.Linkname)
			if err != nil || lrel == "" {
				return fmt.Errorf("%w: hard link %s -> %s", ErrUnsafePath, h.Name, h.Linkname)
			}
			if shadowed(lrel, nondir) {
				return fmt.Errorf("%w: hard link %s -> %s goes through a symlink", ErrUnsafePath, h.Name, h.Linkname)
			}
			src := filepath.Join(dir, filepath.FromSlash(lrel))
			fi, err := os.Lstat(src)
			if err != nil || !fi.Mode().IsRegular() {
				return fmt.Errorf("hard link %s -> %s: target is not a file extracted before it", h.Name, h.Linkname)
			}
			if _, err := os.Lstat(target); err == nil {
				continue
			}
			if err := os.Link(src, target); err != nil {
				return err
			}
			nondir[rel] = true
			e := entries[lrel]
			e.Path = rel
			entries[rel] = e
		default:
			// Devices, FIFOs and the like have no place in a cluster image.
		}
	}
	// Directory modes last, so a read-only directory does not stop its own extraction.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i].p, dirs[i].mode); err != nil {
			return err
		}
	}
	return nil
}

// cleanName returns name relative to the archive root ("" for the root itself), or
// ErrUnsafePath for absolute names and names with "..".
func cleanName(name string) (string, error) {
	n := strings.TrimPrefix(name, "./")
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("%w: %q is absolute", ErrUnsafePath, name)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// shadowed reports whether a parent of rel is a file or symlink we created.
func shadowed(rel string, nondir map[string]bool) bool {
	for p := path.Dir(rel); p != "." && p != "/"; p = path.Dir(p) {
		if nondir[p] {
			return true
		}
	}
	return false
}

// mkParents creates the parents of rel, recording those it creates in entries.
func mkParents(dir, rel string, entries map[string]Entry) error {
	parent := path.Dir(rel)
	if parent == "." {
		return nil
	}
	if _, ok := entries[parent]; ok {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(parent)), 0o755); err != nil {
		return err
	}
	for p := parent; p != "."; p = path.Dir(p) {
		if _, ok := entries[p]; ok {
			break
		}
		entries[p] = Entry{Path: p, Type: TypeDir, Mode: 0o755}
	}
	return nil
}
