package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

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

// syncingDriver is the filesystem driver plus a directory sync after every Move. The
// filesystem driver fsyncs upload data when it is committed and syncs the directory after
// PutContent, but not after the rename that makes an uploaded blob visible at
// blobs/<alg>/<xx>/<hex>/data: without the sync a crash could leave a link to a blob
// whose directory entry never reached the disk.
type syncingDriver struct {
	storagedriver.StorageDriver
	root string
}

func (d *syncingDriver) Move(ctx context.Context, src, dst string) error {
	if err := d.StorageDriver.Move(ctx, src, dst); err != nil {
		return err
	}
	// the new entry, and the directories MkdirAll may just have created.
	dir := filepath.Join(d.root, filepath.FromSlash(dst))
	for i := 0; i < 3; i++ {
		dir = filepath.Dir(dir)
		if err := syncDir(dir); err != nil {
			return err
		}
		if dir == d.root {
			break
		}
	}
	return nil
}

func syncDir(dir string) error {
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
