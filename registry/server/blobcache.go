package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// A hub on remote storage reads every blob it serves from the bucket. With a blob cache
// (Config.BlobCacheDir) a replica keeps the blobs it served on its own disk, so a blob
// that many nodes pull is fetched from the bucket once per replica, not once per node.
//
// Only blob data is cached, by digest: it never changes. Whether a blob exists in a
// repository is still asked of the storage (through the Redis descriptor cache) before
// its data is read, so a blob that garbage collection deleted is never served from here;
// its file is just left to age out. A blob is kept only once it was read whole from
// offset 0 and its bytes hash to its digest, and only from its second read on: a blob
// pulled once (most of a push-then-pull) costs no local write, one that nodes pull again
// and again is kept.

// blobDataPrefix is where distribution keeps blob data: <prefix><xx>/<hex>/data.
const blobDataPrefix = "/docker/registry/v2/blobs/sha256/"

// cachingDriver serves blob data from a blobCache, filling it as blobs are read.
type cachingDriver struct {
	storagedriver.StorageDriver
	c *blobCache
}

type blobCache struct {
	dir     string
	max     int64 // bytes kept at most; the oldest used go first
	maxBlob int64 // larger blobs are not kept

	mu      sync.Mutex
	size    int64
	filling map[string]bool     // digests being filled
	seen    map[string]struct{} // digests read once, not kept yet (forgotten when full)
	hits    int64
	fills   int64
}

// newBlobCache opens (creating) the cache in dir, holding at most max bytes; what a
// killed process left half-written is removed.
func newBlobCache(dir string, max int64) (*blobCache, error) {
	if max <= 0 {
		return nil, fmt.Errorf("blob cache %s: size must be positive", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("blob cache: %w", err)
	}
	c := &blobCache{dir: dir, max: max, maxBlob: min(max/4, 1<<30), filling: map[string]bool{}, seen: map[string]struct{}{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), ".fill-") {
			return os.Remove(p)
		}
		if fi, err := d.Info(); err == nil {
			c.size += fi.Size()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob cache %s: %w", dir, err)
	}
	return c, nil
}

// blobHex is the hex digest of a blob data path, ok=false for any other path.
func blobHex(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, blobDataPrefix)
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "data" || len(parts[1]) != 64 || parts[0] != parts[1][:2] {
		return "", false
	}
	if _, err := hex.DecodeString(parts[1]); err != nil {
		return "", false
	}
	return parts[1], true
}

func (c *blobCache) path(h string) string { return filepath.Join(c.dir, h[:2], h) }

func (d *cachingDriver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	h, ok := blobHex(p)
	if !ok {
		return d.StorageDriver.Reader(ctx, p, offset)
	}
	if f, err := d.c.open(h, offset); err == nil {
		return f, nil
	}
	rc, err := d.StorageDriver.Reader(ctx, p, offset)
	if err != nil || offset != 0 || !d.c.claim(h) {
		return rc, err
	}
	return d.c.fill(h, rc), nil
}

// Delete forgets the cached blobs under p: those this replica deletes (others' deletions
// are caught by the existence check before every read).
func (d *cachingDriver) Delete(ctx context.Context, p string) error {
	err := d.StorageDriver.Delete(ctx, p)
	if h, ok := blobHex(strings.TrimSuffix(p, "/") + "/data"); ok {
		d.c.remove(h)
	}
	return err
}

// open serves a cached blob from offset, marking it used.
func (c *blobCache) open(h string, offset int64) (io.ReadCloser, error) {
	f, err := os.Open(c.path(h))
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	now := time.Now()
	_ = os.Chtimes(f.Name(), now, now)
	c.mu.Lock()
	c.hits++
	c.mu.Unlock()
	return f, nil
}

// maxSeen bounds the digests remembered as read once (~100 bytes each).
const maxSeen = 100_000

// claim reserves the filling of h for the caller: false for a blob's first read, and
// while another read fills it.
func (c *blobCache) claim(h string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[h]; !ok {
		if len(c.seen) >= maxSeen {
			clear(c.seen)
		}
		c.seen[h] = struct{}{}
		return false
	}
	if c.filling[h] {
		return false
	}
	c.filling[h] = true
	delete(c.seen, h)
	return true
}

// release ends a fill; one that was given up leaves h as read once, to be tried again.
func (c *blobCache) release(h string, kept bool) {
	c.mu.Lock()
	delete(c.filling, h)
	if !kept {
		c.seen[h] = struct{}{}
	}
	c.mu.Unlock()
}

func (c *blobCache) remove(h string) {
	fi, err := os.Stat(c.path(h))
	if err != nil {
		return
	}
	if os.Remove(c.path(h)) == nil {
		c.mu.Lock()
		c.size -= fi.Size()
		c.mu.Unlock()
	}
}

// fill returns rc teeing into a new cache file, kept once the whole blob was read and
// verified; anything else (an early Close, a read error, a wrong digest, a blob larger
// than maxBlob, a full disk) leaves the cache as it was and the reader unharmed.
func (c *blobCache) fill(h string, rc io.ReadCloser) io.ReadCloser {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(c.dir, fmt.Sprintf(".fill-%s-%x", h[:16], rnd))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		c.release(h, false)
		return rc
	}
	return &fillReader{rc: rc, f: f, tmp: tmp, h: h, c: c, sum: sha256.New()}
}

type fillReader struct {
	rc  io.ReadCloser
	f   *os.File // nil once the fill is given up or done
	tmp string
	h   string
	c   *blobCache
	sum hash.Hash
	n   int64
}

func (r *fillReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 && r.f != nil {
		r.n += int64(n)
		r.sum.Write(p[:n])
		if _, werr := r.f.Write(p[:n]); werr != nil || r.n > r.c.maxBlob {
			r.abandon()
		}
	}
	if errors.Is(err, io.EOF) && r.f != nil {
		r.publish()
	}
	return n, err
}

// Close keeps the fill if what was read is the whole blob: a reader of a known size
// (distribution's) stops at its last byte and never sees EOF, and a prefix of a blob
// never hashes to the blob's digest.
func (r *fillReader) Close() error {
	if r.f != nil && hex.EncodeToString(r.sum.Sum(nil)) == r.h {
		r.publish()
	}
	r.abandon()
	return r.rc.Close()
}

// abandon gives the fill up (once).
func (r *fillReader) abandon() {
	if r.f == nil {
		return
	}
	r.f.Close()
	os.Remove(r.tmp)
	r.f = nil
	r.c.release(r.h, false)
}

// publish keeps the fill as the blob if its bytes are the blob's.
func (r *fillReader) publish() {
	f := r.f
	r.f = nil
	kept := false
	defer func() { r.c.release(r.h, kept) }()
	if hex.EncodeToString(r.sum.Sum(nil)) != r.h || f.Close() != nil {
		f.Close()
		os.Remove(r.tmp)
		return
	}
	dst := r.c.path(r.h)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil || os.Rename(r.tmp, dst) != nil {
		os.Remove(r.tmp)
		return
	}
	kept = true
	r.c.mu.Lock()
	r.c.size += r.n
	r.c.fills++
	over := r.c.size > r.c.max
	r.c.mu.Unlock()
	if over {
		r.c.evict()
	}
}

// evict removes the least recently used blobs until the cache holds 90% of its size.
func (c *blobCache) evict() {
	type entry struct {
		p    string
		size int64
		used time.Time
	}
	var all []entry
	_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".fill-") {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			all = append(all, entry{p, fi.Size(), fi.ModTime()})
		}
		return nil
	})
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	var total int64
	for _, e := range all {
		total += e.size
	}
	target := c.max / 10 * 9
	for _, e := range all {
		if total <= target {
			break
		}
		if os.Remove(e.p) == nil {
			total -= e.size
		}
	}
	c.mu.Lock()
	c.size = total
	c.mu.Unlock()
	slog.Debug("blob cache: evicted", "dir", c.dir, "bytes", total)
}

// stats says how often blobs came from the cache and how many were filled.
func (c *blobCache) stats() (hits, fills, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.fills, c.size
}
