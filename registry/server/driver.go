package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"
)

// sharedMiddleware is a storage middleware that replaces whatever driver distribution
// built with the Server's own driver, so every App generation, the referrers index and
// garbage collection see one store (which matters for the in-memory driver).
const sharedMiddleware = "sealos-shared-driver"

var (
	sharedDrivers sync.Map // id -> storagedriver.StorageDriver
	sharedNext    atomic.Int64
)

func init() {
	err := storagemiddleware.Register(sharedMiddleware, func(ctx context.Context, _ storagedriver.StorageDriver, options map[string]any) (storagedriver.StorageDriver, error) {
		id, _ := options["id"].(string)
		d, ok := sharedDrivers.Load(id)
		if !ok {
			return nil, fmt.Errorf("%s: no driver with id %q", sharedMiddleware, id)
		}
		return d.(storagedriver.StorageDriver), nil
	})
	if err != nil {
		panic(err)
	}
}

func registerDriver(d storagedriver.StorageDriver) string {
	id := strconv.FormatInt(sharedNext.Add(1), 10)
	sharedDrivers.Store(id, d)
	return id
}

func unregisterDriver(id string) { sharedDrivers.Delete(id) }

func randomSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// syncingDriver is the filesystem driver with its durability put where it counts.
//
//   - After every Move (the rename that makes an uploaded blob visible at
//     blobs/<alg>/<xx>/<hex>/data) it syncs the directories that changed; the stock driver
//     does not, so a crash could leave a link to a blob whose directory entry never
//     reached the disk.
//   - Upload data (_uploads/<id>/data) is written through a writer that starts write-back
//     as data arrives (sync_file_range) and fsyncs once, on Commit, before the blob is
//     moved into place; the stock writer fsyncs on every Close, i.e. after each chunk,
//     and only then starts writing. Same guarantee, the disk works while the network does.
//   - Upload bookkeeping (_uploads/<id>/startedat, hashstates) is written without fsync:
//     after a crash an upload restarts anyway.
type syncingDriver struct {
	storagedriver.StorageDriver
	root string
}

func isUploadPath(p string) bool { return strings.Contains(p, "/_uploads/") }

func (d *syncingDriver) full(p string) string { return filepath.Join(d.root, filepath.FromSlash(p)) }

func (d *syncingDriver) Move(ctx context.Context, src, dst string) error {
	dirs, err := d.mkdirsFor(d.full(dst))
	if err != nil {
		return err
	}
	if err := d.StorageDriver.Move(ctx, src, dst); err != nil {
		return err
	}
	return syncPaths(dirs)
}

// mkdirsFor creates the directories above the file p and returns those whose entries
// change when p is created: p's parent, and the parent of every directory it created.
func (d *syncingDriver) mkdirsFor(p string) ([]string, error) {
	var created []string
	for dir := filepath.Dir(p); len(dir) > len(d.root); dir = filepath.Dir(dir) {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		created = append(created, dir)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		return nil, err
	}
	dirs := []string{filepath.Dir(p)}
	for _, dir := range created {
		dirs = append(dirs, filepath.Dir(dir))
	}
	return dirs, nil
}

// syncPaths fsyncs files and directories concurrently: the filesystem can serve them
// with one journal commit instead of one after the other.
func syncPaths(paths []string) error {
	if len(paths) == 1 {
		return syncPath(paths[0])
	}
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = syncPath(p)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (d *syncingDriver) PutContent(ctx context.Context, p string, content []byte) error {
	if !isUploadPath(p) {
		return d.StorageDriver.PutContent(ctx, p, content)
	}
	full := d.full(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o777); err != nil {
		return err
	}
	tmp := full + ".tmp-" + randomSecret()[:8]
	if err := os.WriteFile(tmp, content, 0o666); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, full)
}

func (d *syncingDriver) Writer(ctx context.Context, p string, appendMode bool) (storagedriver.FileWriter, error) {
	if !isUploadPath(p) || path.Base(p) != "data" {
		return d.StorageDriver.Writer(ctx, p, appendMode)
	}
	full := d.full(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o777); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	var off int64
	if appendMode {
		if off, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, err
		}
	} else if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	return newUploadWriter(f, off), nil
}

func newUploadWriter(f *os.File, off int64) *uploadWriter {
	return &uploadWriter{f: f, bw: bufio.NewWriterSize(f, 256<<10), size: off, flushed: off}
}

// writebackChunk is how much written data is handed to the kernel for write-back at once.
const writebackChunk = 8 << 20

// uploadWriter is the FileWriter of upload data: see syncingDriver.
type uploadWriter struct {
	f                            *os.File
	bw                           *bufio.Writer
	size, flushed                int64
	closed, committed, cancelled bool

	// the background fdatasync in flight (see earlySync): done is closed when it ends,
	// after err is set
	bg struct {
		done chan struct{}
		err  error
		at   int64 // flushed when it started
	}
}

// earlySync is how much data an upload hands to the kernel between the fdatasyncs it
// starts in the background while more data arrives. Write-back alone (sync_file_range)
// only moves data to the disk's volatile cache; a flush of that cache then waits for all
// of it at once, after the last byte. Flushing as the data arrives lets the disk make it
// durable while the network still works, and leaves Commit's fdatasync little to wait for.
const earlySync = 64 << 20

func (w *uploadWriter) Write(p []byte) (int, error) {
	switch {
	case w.closed:
		return 0, errors.New("already closed")
	case w.committed:
		return 0, errors.New("already committed")
	case w.cancelled:
		return 0, errors.New("already cancelled")
	}
	n, err := w.bw.Write(p)
	w.size += int64(n)
	if err == nil && w.size-w.flushed >= writebackChunk {
		if err = w.bw.Flush(); err == nil {
			// start write-back now; Commit's fsync then has little left to wait for
			_ = unix.SyncFileRange(int(w.f.Fd()), w.flushed, w.size-w.flushed, unix.SYNC_FILE_RANGE_WRITE)
			w.flushed = w.size
			if w.flushed-w.bg.at >= earlySync && w.bgIdle() {
				w.startBgSync()
			}
		}
	}
	return n, err
}

func (w *uploadWriter) bgIdle() bool {
	if w.bg.done == nil {
		return true
	}
	select {
	case <-w.bg.done:
		return w.bg.err == nil // a failed sync is reported by Commit; start no other
	default:
		return false
	}
}

func (w *uploadWriter) startBgSync() {
	done := make(chan struct{})
	w.bg.done, w.bg.at = done, w.flushed
	fd := int(w.f.Fd())
	go func() {
		defer close(done)
		if err := unix.Fdatasync(fd); err != nil {
			// the kernel reports a write-back error to one fdatasync only: keep it for Commit
			w.bg.err = fmt.Errorf("fdatasync %s: %w", w.f.Name(), err)
		}
	}()
}

// waitBg waits for the background fdatasync in flight, if any, and returns its error.
func (w *uploadWriter) waitBg() error {
	if w.bg.done == nil {
		return nil
	}
	<-w.bg.done
	return w.bg.err
}

func (w *uploadWriter) Size() int64 { return w.size }

func (w *uploadWriter) Close() error {
	if w.closed {
		return errors.New("already closed")
	}
	w.closed = true
	if w.committed {
		return w.f.Close()
	}
	err := w.bw.Flush()
	_ = w.waitBg() // before the descriptor goes; the next writer's Commit syncs again
	return errors.Join(err, w.f.Close())
}

func (w *uploadWriter) Cancel(ctx context.Context) error {
	if w.closed {
		return errors.New("already closed")
	}
	w.cancelled, w.closed = true, true
	_ = w.waitBg()
	_ = w.f.Close()
	return os.Remove(w.f.Name())
}

// Commit makes the data durable: it returns only after fdatasync.
func (w *uploadWriter) Commit(ctx context.Context) error {
	switch {
	case w.closed:
		return errors.New("already closed")
	case w.committed:
		return errors.New("already committed")
	case w.cancelled:
		return errors.New("already cancelled")
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if err := w.waitBg(); err != nil {
		return err
	}
	// fdatasync: the data and the size, without waiting for the timestamps
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", w.f.Name(), err)
	}
	w.committed = true
	return nil
}

func syncPath(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
