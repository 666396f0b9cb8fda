package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// memDriver is distribution's in-memory driver with each path component stored as
// "name._depth" (the characters a driver path may hold). The driver's tree lookup (inmemory's dir.find) takes a path whose last
// component is a directory holding a child of the same name for that child: a tag named
// "index" or "current" (the names of a tag directory's own children) vanished from tag
// lists and could not be untagged, and so did a repository "a/a". With the depth in every
// name, no directory has a child of its own name.
type memDriver struct{ storagedriver.StorageDriver }

func newMemDriver() *memDriver { return &memDriver{inmemory.New()} }

const memSep = "._"

func encodeMemPath(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return "/"
	}
	parts := strings.Split(p, "/")
	for i, c := range parts {
		parts[i] = c + memSep + strconv.Itoa(i)
	}
	return "/" + strings.Join(parts, "/")
}

func decodeMemPath(p string) string {
	parts := strings.Split(p, "/")
	for i, c := range parts {
		if at := strings.LastIndex(c, memSep); at >= 0 { // the last is ours
			parts[i] = c[:at]
		}
	}
	return strings.Join(parts, "/")
}

// memErr names the caller's path in a not-found error, not the stored one.
func memErr(err error) error {
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		nf.Path = decodeMemPath(nf.Path)
		return nf
	}
	return err
}

func (d *memDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	b, err := d.StorageDriver.GetContent(ctx, encodeMemPath(p))
	return b, memErr(err)
}

func (d *memDriver) PutContent(ctx context.Context, p string, content []byte) error {
	return memErr(d.StorageDriver.PutContent(ctx, encodeMemPath(p), content))
}

func (d *memDriver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	r, err := d.StorageDriver.Reader(ctx, encodeMemPath(p), offset)
	return r, memErr(err)
}

func (d *memDriver) Writer(ctx context.Context, p string, append bool) (storagedriver.FileWriter, error) {
	w, err := d.StorageDriver.Writer(ctx, encodeMemPath(p), append)
	return w, memErr(err)
}

func (d *memDriver) Stat(ctx context.Context, p string) (storagedriver.FileInfo, error) {
	fi, err := d.StorageDriver.Stat(ctx, encodeMemPath(p))
	if err != nil {
		return nil, memErr(err)
	}
	return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{
		Path: p, Size: fi.Size(), ModTime: fi.ModTime(), IsDir: fi.IsDir(),
	}}, nil
}

func (d *memDriver) List(ctx context.Context, p string) ([]string, error) {
	entries, err := d.StorageDriver.List(ctx, encodeMemPath(p))
	for i, e := range entries {
		entries[i] = decodeMemPath(e)
	}
	return entries, memErr(err)
}

func (d *memDriver) Move(ctx context.Context, from, to string) error {
	return memErr(d.StorageDriver.Move(ctx, encodeMemPath(from), encodeMemPath(to)))
}

func (d *memDriver) Delete(ctx context.Context, p string) error {
	return memErr(d.StorageDriver.Delete(ctx, encodeMemPath(p)))
}

func (d *memDriver) RedirectURL(*http.Request, string) (string, error) { return "", nil }

func (d *memDriver) Walk(ctx context.Context, p string, f storagedriver.WalkFn, options ...func(*storagedriver.WalkOptions)) error {
	return storagedriver.WalkFallback(ctx, d, p, f, options...)
}
