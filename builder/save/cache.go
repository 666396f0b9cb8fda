package save

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sys/unix"
)

// Cache is a content-addressed blob directory shared by every save on the machine
// (`<root>/cache`): blobs/sha256/<hex> holds verified content, <hex>.partial a download
// in progress (resumed from where it stopped). Files appear under their digest only once
// their content has been checked, so a cached blob is never fetched again.
type Cache struct {
	Dir string
	// Progress, if set, counts bytes as they arrive from the network.
	Progress *atomic.Int64
}

// Path is where verified blob d lives in the cache.
func (c Cache) Path(d v1.Hash) string {
	return filepath.Join(c.Dir, "blobs", d.Algorithm, d.Hex)
}

// Has says whether the cache holds blob d with the given size (size < 0: any size).
func (c Cache) Has(d v1.Hash, size int64) bool {
	st, err := os.Stat(c.Path(d))
	return err == nil && st.Mode().IsRegular() && (size < 0 || st.Size() == size)
}

// Put stores small content (manifests) under its digest.
func (c Cache) Put(d v1.Hash, data []byte) error {
	if c.Has(d, int64(len(data))) {
		return nil
	}
	return writeFileAtomic(c.Path(d), data)
}

// maxAttempts is how many times a blob download that keeps making progress is resumed.
const maxAttempts = 4

// fetcher downloads blob d of repo over authenticated round trips.
type fetcher interface {
	transport(ctx context.Context, repo name.Repository) (http.RoundTripper, error)
}

// Fetch makes the cache hold blob d (size bytes, < 0 if unknown), downloading it from repo
// if needed and resuming a partial download left by an interrupted run. It returns the
// number of bytes read from the network. Concurrent fetches of one blob, in this process or
// another, download it once.
func (c Cache) Fetch(ctx context.Context, f fetcher, repo name.Repository, d v1.Hash, size int64) (int64, error) {
	if c.Has(d, size) {
		return 0, nil
	}
	final := c.Path(d)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return 0, err
	}
	partial := final + ".partial"
	pf, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	defer pf.Close()
	if err := lockFile(ctx, pf); err != nil {
		return 0, err
	}
	defer syscall.Flock(int(pf.Fd()), syscall.LOCK_UN)
	if c.Has(d, size) { // another fetch finished while we waited
		return 0, nil
	}
	// After waiting, the path may name a new file (the previous holder renamed ours away).
	if st, err := os.Stat(partial); err != nil || !sameFile(st, pf) {
		pf.Close()
		return c.Fetch(ctx, f, repo, d, size)
	}

	h := sha256.New()
	have, err := io.Copy(h, pf)
	if err != nil {
		return 0, err
	}
	if size >= 0 && have > size {
		have = 0
		h.Reset()
		if err := pf.Truncate(0); err != nil {
			return 0, err
		}
	}
	var fetched int64
	if size < 0 || have < size {
		// A connection that breaks after some progress is resumed where it stopped, a few
		// times; any other failure ends the fetch (the partial file stays for the next run).
		for attempt := 1; ; attempt++ {
			start, n, err := c.download(ctx, f, repo, d, size, pf, h, have)
			fetched += n
			if err == nil {
				break
			}
			if n == 0 || attempt == maxAttempts || ctx.Err() != nil {
				return fetched, err
			}
			have = start + n
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		pf.Truncate(0)
		return fetched, fmt.Errorf("blob %s: content has digest sha256:%s", d, got)
	}
	st, err := pf.Stat()
	if err != nil {
		return fetched, err
	}
	if size >= 0 && st.Size() != size {
		pf.Truncate(0)
		return fetched, fmt.Errorf("blob %s: got %d bytes, the manifest says %d", d, st.Size(), size)
	}
	if err := os.Rename(partial, final); err != nil {
		return fetched, err
	}
	return fetched, nil
}

// download appends blob d from offset have to pf, feeding h, and returns the offset it
// wrote from and how many bytes it wrote. A server that ignores the range request sends the
// whole blob, which then replaces what pf held (start 0).
func (c Cache) download(ctx context.Context, f fetcher, repo name.Repository, d v1.Hash, size int64, pf *os.File, h interface {
	io.Writer
	Reset()
}, have int64) (start, n int64, err error) {
	rt, err := f.transport(ctx, repo)
	if err != nil {
		return 0, 0, err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Registry.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), d)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	switch {
	case have > 0 && resp.StatusCode == http.StatusPartialContent:
	case resp.StatusCode == http.StatusOK:
		h.Reset()
		have = 0
		if err := pf.Truncate(0); err != nil {
			return 0, 0, err
		}
	default:
		if err := transport.CheckError(resp, http.StatusOK); err != nil {
			return 0, 0, err
		}
		return 0, 0, fmt.Errorf("GET %s: unexpected status %s", u, resp.Status)
	}
	if size > have {
		// Reserve the blocks up front (the file size stays what was written, which resuming
		// relies on): the filesystem then allocates once instead of on every write.
		unix.Fallocate(int(pf.Fd()), unix.FALLOC_FL_KEEP_SIZE, have, size-have)
	}
	n, err = copyHashed(pf, have, h, resp.Body, c.Progress)
	if err != nil {
		return have, n, fmt.Errorf("GET %s: %w", u, err)
	}
	return have, n, nil
}

// copyBufSize is the chunk size of blob downloads: large chunks mean few system calls.
const copyBufSize = 1 << 20

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyHashed writes r to f from offset at, feeding h, in large chunks. (Writing through
// O_DIRECT was tried: it saves CPU but the disk then caps a save at its raw speed, slower
// than the page cache here.)
func copyHashed(f *os.File, at int64, h io.Writer, r io.Reader, progress *atomic.Int64) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := fill(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			if _, err := f.WriteAt(buf[:n], at+total); err != nil {
				return total, err
			}
			total += int64(n)
			if progress != nil {
				progress.Add(int64(n))
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// fill reads r until buf is full, r ends (io.EOF) or fails.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// lockFile takes an exclusive flock on f, giving up when ctx ends.
func lockFile(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func sameFile(st os.FileInfo, f *os.File) bool {
	fst, err := f.Stat()
	return err == nil && os.SameFile(st, fst)
}

// Prune removes the blobs of the cache not used within keep (0: all of them) and returns
// how many and their bytes. A download in progress (its .partial file locked by the
// process fetching it) is left alone. Saved registry/ directories keep their own copies.
func (c Cache) Prune(keep time.Duration) (files int, bytes int64, err error) {
	root := filepath.Join(c.Dir, "blobs")
	now := time.Now()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		used := fi.ModTime()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if at := time.Unix(st.Atim.Unix()); at.After(used) {
				used = at
			}
		}
		if keep > 0 && now.Sub(used) < keep {
			return nil
		}
		if strings.HasSuffix(p, ".partial") && !c.unlocked(p) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		files++
		bytes += fi.Size()
		return nil
	})
	return files, bytes, err
}

// unlocked tells whether no process holds the lock of a partial download.
func (c Cache) unlocked(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return true
}
