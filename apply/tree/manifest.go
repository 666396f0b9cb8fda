package tree

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
)

// Entry types.
const (
	TypeFile    = "f"
	TypeDir     = "d"
	TypeSymlink = "l"
)

// Entry is one path of a tree.
type Entry struct {
	Path string `json:"p"`
	Type string `json:"t"`
	Mode uint32 `json:"m"`           // permission bits
	Size int64  `json:"s,omitempty"` // files
	Sum  string `json:"h,omitempty"` // files: hex sha256 of the content
	Link string `json:"l,omitempty"` // symlinks: the target
}

// Manifest describes a tree: its entries sorted by path. Two trees with equal manifests
// hold the same content.
type Manifest struct {
	Entries []Entry `json:"entries"`
}

// Digest is the hex sha256 of the manifest's canonical JSON.
func (m *Manifest) Digest() string {
	b, _ := json.Marshal(m)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Marshal returns the canonical JSON.
func (m *Manifest) Marshal() []byte {
	b, _ := json.Marshal(m)
	return b
}

// ParseManifest reads a manifest written by Marshal.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	m.sort()
	return &m, nil
}

func (m *Manifest) sort() {
	sort.Slice(m.Entries, func(i, j int) bool { return m.Entries[i].Path < m.Entries[j].Path })
}

// Map returns the entries by path.
func (m *Manifest) Map() map[string]Entry {
	out := make(map[string]Entry, len(m.Entries))
	for _, e := range m.Entries {
		out[e.Path] = e
	}
	return out
}

// Size is the total size of the files.
func (m *Manifest) Size() int64 {
	var n int64
	for _, e := range m.Entries {
		n += e.Size
	}
	return n
}

// Scan describes the tree under dir, hashing files on all cores.
func Scan(dir string) (*Manifest, error) {
	var m Manifest
	var files []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := Entry{Path: filepath.ToSlash(rel), Mode: modeBits(info.Mode())}
		switch {
		case d.IsDir():
			e.Type = TypeDir
		case info.Mode()&fs.ModeSymlink != 0:
			e.Type = TypeSymlink
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			e.Type = TypeFile
			e.Size = info.Size()
			files = append(files, len(m.Entries))
		default:
			return nil
		}
		m.Entries = append(m.Entries, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	}
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				sum, err := HashFile(filepath.Join(dir, filepath.FromSlash(m.Entries[i].Path)))
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				m.Entries[i].Sum = sum
			}
		}()
	}
	for _, i := range files {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, fmt.Errorf("scan %s: %w", dir, err)
	default:
	}
	m.sort()
	return &m, nil
}

// modeBits maps an fs.FileMode to Unix permission bits (with setuid, setgid, sticky).
func modeBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// HashFile is the hex sha256 of the file at p.
func HashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HashBytes is the hex sha256 of b.
func HashBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Diff is what turns the tree described by old into the one described by new.
type Diff struct {
	Send   []Entry  // entries to write (files, dirs, symlinks), in path order
	Remove []string // paths to remove first: gone, or changed type
}

// Empty reports whether the trees are the same.
func (d Diff) Empty() bool { return len(d.Send) == 0 && len(d.Remove) == 0 }

// Bytes is the size of the files to send.
func (d Diff) Bytes() int64 {
	var n int64
	for _, e := range d.Send {
		n += e.Size
	}
	return n
}

// Compare computes the diff from old (nil: an empty tree) to new.
func Compare(old, new *Manifest) Diff {
	var d Diff
	prev := map[string]Entry{}
	if old != nil {
		prev = old.Map()
	}
	seen := make(map[string]bool, len(new.Entries))
	for _, e := range new.Entries {
		seen[e.Path] = true
		o, ok := prev[e.Path]
		switch {
		case !ok:
			d.Send = append(d.Send, e)
		case o.Type != e.Type:
			d.Remove = append(d.Remove, e.Path)
			d.Send = append(d.Send, e)
		case o != e:
			d.Send = append(d.Send, e)
		}
	}
	if old != nil {
		removed := map[string]bool{}
		for _, r := range d.Remove {
			removed[r] = true
		}
		// Old entries are in path order, so a removed directory comes before its children.
		for _, o := range old.Entries {
			if !seen[o.Path] && !coveredBy(o.Path, removed) {
				d.Remove = append(d.Remove, o.Path)
				removed[o.Path] = true
			}
		}
	}
	sort.Strings(d.Remove)
	return d
}

func coveredBy(p string, removed map[string]bool) bool {
	for q := path.Dir(p); q != "." && q != "/"; q = path.Dir(q) {
		if removed[q] {
			return true
		}
	}
	return false
}
