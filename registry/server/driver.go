package server

import (
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

	"github.com/cluster-image/sealos/store/durable"
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
//   - Upload data (_uploads/<id>/data) is written through a durable.Writer, which starts
//     write-back and flushes the disk's cache as data arrives, and fdatasyncs on Commit,
//     before the blob is moved into place; the stock writer fsyncs on every Close, i.e.
//     after each chunk, and only then starts writing. Same guarantee, the disk works
//     while the network does.
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
	return &uploadWriter{f: f, w: durable.NewWriter(f, off)}
}

// uploadWriter is the FileWriter of upload data (see syncingDriver): a durable.Writer,
// which keeps the disk busy as data arrives, so that Commit has little left to wait for.
type uploadWriter struct {
	f                            *os.File
	w                            *durable.Writer
	closed, committed, cancelled bool
}

func (w *uploadWriter) Write(p []byte) (int, error) {
	switch {
	case w.closed:
		return 0, errors.New("already closed")
	case w.committed:
		return 0, errors.New("already committed")
	case w.cancelled:
		return 0, errors.New("already cancelled")
	}
	return w.w.Write(p)
}

func (w *uploadWriter) Size() int64 { return w.w.Size() }

// Close ends one request's writing; the upload may go on with another writer. The error
// of a background sync is returned here: a later descriptor would not hear of it.
func (w *uploadWriter) Close() error {
	if w.closed {
		return errors.New("already closed")
	}
	w.closed = true
	if w.committed {
		return w.f.Close()
	}
	err := w.w.Flush()
	return errors.Join(err, w.f.Close())
}

func (w *uploadWriter) Cancel(ctx context.Context) error {
	if w.closed {
		return errors.New("already closed")
	}
	w.cancelled, w.closed = true, true
	_ = w.w.Flush() // for the background sync, before the descriptor goes
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
	if err := w.w.Sync(); err != nil {
		return err
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
