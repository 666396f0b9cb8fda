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
	"sync"
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

// extractor writes one archive's entries below dir and records them in entries.
type extractor struct {
	dir     string
	entries map[string]Entry
	nondir  map[string]bool // paths written that are not directories
	dirs    []dirMode       // modes set once every entry is written
	w       *fileWriter
}

type dirMode struct {
	p    string
	mode os.FileMode
}

func untar(r io.Reader, dir string, entries map[string]Entry) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	x := &extractor{dir: dir, entries: entries, nondir: map[string]bool{}, w: newFileWriter(8)}
	defer x.w.close()
	tr := tar.NewReader(r)
	for {
		if err := x.w.error(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if err := x.entry(tr, hdr); err != nil {
			return err
		}
	}
	if err := x.w.close(); err != nil {
		return err
	}
	// Directory modes last, so a read-only directory does not stop its own extraction.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(x.dirs[i].p, x.dirs[i].mode); err != nil {
			return err
		}
	}
	return nil
}

// entry writes the archive entry hdr (its content read from tr). What an upper layer wrote
// already wins, and a path below something that is not a directory is skipped.
func (x *extractor) entry(tr io.Reader, hdr *tar.Header) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" || strings.HasPrefix(path.Base(rel), ".wh.") || shadowed(rel, x.nondir) {
		return nil
	}
	if err := mkParents(x.dir, rel, x.entries); err != nil {
		return err
	}
	target := filepath.Join(x.dir, filepath.FromSlash(rel))
	mode := os.FileMode(hdr.Mode & 0o7777)
	if hdr.Typeflag == tar.TypeLink {
		return x.hardlink(rel, target, hdr)
	}
	prev, exists := x.entries[rel]
	switch hdr.Typeflag {
	case tar.TypeDir:
		if exists && prev.Type != TypeDir {
			return nil // an upper layer put a file here
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		x.dirs = append(x.dirs, dirMode{target, mode | 0o700})
		x.entries[rel] = Entry{Path: rel, Type: TypeDir, Mode: uint32(mode | 0o700)}
		return nil
	case tar.TypeReg, tar.TypeRegA:
		if exists {
			return nil
		}
		return x.file(rel, target, mode, tr, hdr.Size)
	case tar.TypeSymlink:
		if exists {
			return nil
		}
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
		x.nondir[rel] = true
		x.entries[rel] = Entry{Path: rel, Type: TypeSymlink, Mode: 0o777, Link: hdr.Linkname}
	}
	// Devices, FIFOs and the like have no place in a cluster image.
	return nil
}

// file writes a regular file of size bytes, hashing it on the way.
func (x *extractor) file(rel, target string, mode os.FileMode, r io.Reader, size int64) error {
	h := sha256.New()
	var n int64
	if size <= smallFile {
		// Small files are written by a pool: creating files is latency bound.
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("extract %s: %w", rel, err)
		}
		h.Write(data)
		n = int64(len(data))
		x.w.submit(fileJob{target: target, rel: rel, data: data, mode: mode})
	} else {
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		n, err = io.Copy(io.MultiWriter(f, h), r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(target, mode)
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", rel, err)
		}
	}
	x.nondir[rel] = true
	x.entries[rel] = Entry{Path: rel, Type: TypeFile, Mode: uint32(mode), Size: n, Sum: hex.EncodeToString(h.Sum(nil))}
	return nil
}

// hardlink links rel to a file extracted before it, inside dir and not through a symlink.
func (x *extractor) hardlink(rel, target string, hdr *tar.Header) error {
	lrel, err := cleanName(hdr.Linkname)
	if err != nil || lrel == "" {
		return fmt.Errorf("%w: hard link %s -> %s", ErrUnsafePath, hdr.Name, hdr.Linkname)
	}
	if shadowed(lrel, x.nondir) {
		return fmt.Errorf("%w: hard link %s -> %s goes through a symlink", ErrUnsafePath, hdr.Name, hdr.Linkname)
	}
	src := filepath.Join(x.dir, filepath.FromSlash(lrel))
	if err := x.w.wait(); err != nil { // the target may still be in the pool
		return err
	}
	fi, err := os.Lstat(src)
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("hard link %s -> %s: target is not a file extracted before it", hdr.Name, hdr.Linkname)
	}
	if _, ok := x.entries[rel]; ok {
		return nil
	}
	if err := os.Link(src, target); err != nil {
		return err
	}
	x.nondir[rel] = true
	e := x.entries[lrel]
	e.Path = rel
	x.entries[rel] = e
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

// smallFile is the size up to which files are written by the pool.
const smallFile = 1 << 20

type fileJob struct {
	target, rel string
	data        []byte
	mode        os.FileMode
}

// fileWriter writes small files with a few goroutines.
type fileWriter struct {
	jobs    chan fileJob
	workers sync.WaitGroup
	pending sync.WaitGroup
	mu      sync.Mutex
	err     error
	closed  bool
}

func newFileWriter(n int) *fileWriter {
	w := &fileWriter{jobs: make(chan fileJob, 4*n)}
	for range n {
		w.workers.Add(1)
		go func() {
			defer w.workers.Done()
			for j := range w.jobs {
				if err := writeFile(j); err != nil {
					w.mu.Lock()
					if w.err == nil {
						w.err = err
					}
					w.mu.Unlock()
				}
				w.pending.Done()
			}
		}()
	}
	return w
}

func writeFile(j fileJob) error {
	f, err := os.OpenFile(j.target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(j.data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(j.target, j.mode)
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", j.rel, err)
	}
	return nil
}

func (w *fileWriter) submit(j fileJob) {
	w.pending.Add(1)
	w.jobs <- j
}

func (w *fileWriter) error() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// wait waits until every submitted file is written.
func (w *fileWriter) wait() error {
	w.pending.Wait()
	return w.error()
}

// close stops the workers after the pending writes (safe to call twice).
func (w *fileWriter) close() error {
	w.mu.Lock()
	closed := w.closed
	w.closed = true
	w.mu.Unlock()
	if !closed {
		close(w.jobs)
		w.workers.Wait()
	}
	return w.error()
}
