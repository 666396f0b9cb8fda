package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/base"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The "s3" storage driver of the hub, on minio-go: distribution's own (s3-aws) brings
// aws-sdk-go, whose endpoint tables cost every sealos process 2.2 MB and ~4 ms at start.
// It takes the same parameters as distribution's (bucket, region, regionendpoint,
// accesskey, secretkey, secure, skipverify, forcepathstyle, rootdirectory) and passes
// distribution's driver test suite against a real S3 service (s3driver_test.go).
//
// A file written in several sessions (an upload's data, appended to request by request,
// possibly through several replicas) is kept as chunk objects under chunkRoot until it is
// committed; Commit joins them into the file's own object: server-side when every chunk
// but the last is at least minComposePart, else by streaming them through.

const (
	s3DriverName   = "s3"
	chunkRoot      = "/.sealos-chunks" // outside distribution's tree
	chunkTarget    = 16 << 20          // a writer's buffer, and so most chunks' size
	minComposePart = 5 << 20           // S3's smallest multipart part but the last
)

func init() { factory.Register(s3DriverName, s3Factory{}) }

type s3Factory struct{}

func (s3Factory) Create(ctx context.Context, p map[string]any) (storagedriver.StorageDriver, error) {
	d, err := newS3Driver(p)
	if err != nil {
		return nil, err
	}
	return d.checked(), nil
}

// checked wraps d in distribution's base driver: path checks, error naming, tracing.
func (d *s3Driver) checked() storagedriver.StorageDriver {
	return &base.Base{StorageDriver: d}
}

type s3Driver struct {
	c      *minio.Client
	bucket string
	root   string // key prefix, without leading or trailing "/"
}

func param(p map[string]any, k string) string {
	switch v := p[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

func boolParam(p map[string]any, k string, def bool) (bool, error) {
	s := param(p, k)
	if s == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("s3: %s=%q: %w", k, s, err)
	}
	return b, nil
}

// unsupportedS3 are distribution s3 parameters this driver cannot honour, with the value
// that is the same as not setting them; anything else given for them is refused rather
// than silently ignored. The tuning parameters (chunksize, multipartcopy*, v4auth,
// loglevel, ...) are accepted and left to the driver's own choices.
var unsupportedS3 = map[string]string{"encrypt": "false", "keyid": "", "storageclass": "STANDARD", "objectacl": "private",
	"accelerate": "false", "usedualstack": "false", "checksumdisabled": ""}

func newS3Driver(p map[string]any) (*s3Driver, error) {
	for k, none := range unsupportedS3 {
		if v := param(p, k); v != "" && !strings.EqualFold(v, none) {
			return nil, fmt.Errorf("s3: %s=%s is not supported by the hub's S3 driver", k, v)
		}
	}
	bucket := param(p, "bucket")
	if bucket == "" {
		return nil, errors.New("s3: no bucket")
	}
	secure, err := boolParam(p, "secure", true)
	if err != nil {
		return nil, err
	}
	skipVerify, err := boolParam(p, "skipverify", false)
	if err != nil {
		return nil, err
	}
	pathStyle, err := boolParam(p, "forcepathstyle", false)
	if err != nil {
		return nil, err
	}
	region := param(p, "region")
	endpoint := "s3.amazonaws.com"
	if region != "" && region != "us-east-1" {
		endpoint = "s3." + region + ".amazonaws.com"
	}
	if ep := param(p, "regionendpoint"); ep != "" {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("s3: regionendpoint %q: want a URL such as http://host:port", ep)
		}
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	var creds *credentials.Credentials
	if ak, sk := param(p, "accesskey"), param(p, "secretkey"); ak != "" || sk != "" {
		creds = credentials.NewStaticV4(ak, sk, param(p, "sessiontoken"))
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}, &credentials.IAM{}})
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 100
	if skipVerify {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it
	}
	lookup := minio.BucketLookupAuto
	if pathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: secure, Region: region, Transport: tr, BucketLookup: lookup})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	return &s3Driver{c: c, bucket: bucket, root: strings.Trim(param(p, "rootdirectory"), "/")}, nil
}

func (d *s3Driver) Name() string { return s3DriverName }

// key is the object key of a driver path.
func (d *s3Driver) key(p string) string {
	k := strings.TrimPrefix(p, "/")
	if d.root != "" {
		k = d.root + "/" + k
	}
	return k
}

// path is the driver path of an object key.
func (d *s3Driver) path(k string) string {
	if d.root != "" {
		k = strings.TrimPrefix(k, d.root+"/")
	}
	return "/" + strings.TrimSuffix(k, "/")
}

func notFound(err error) bool {
	var r minio.ErrorResponse
	return errors.As(err, &r) && (r.StatusCode == http.StatusNotFound || r.Code == "NoSuchKey")
}

func (d *s3Driver) wrap(p string, err error) error {
	if err == nil {
		return nil
	}
	if notFound(err) {
		return storagedriver.PathNotFoundError{Path: p, DriverName: s3DriverName}
	}
	return storagedriver.Error{DriverName: s3DriverName, Detail: err}
}

func (d *s3Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	rc, err := d.Reader(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, d.wrap(p, err)
}

func (d *s3Driver) PutContent(ctx context.Context, p string, content []byte) error {
	_, err := d.c.PutObject(ctx, d.bucket, d.key(p), bytes.NewReader(content), int64(len(content)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true})
	return d.wrap(p, err)
}

func (d *s3Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, storagedriver.InvalidOffsetError{Path: p, Offset: offset, DriverName: s3DriverName}
	}
	opts := minio.GetObjectOptions{}
	if offset > 0 {
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, err
		}
	}
	// one GET, made now (Client.GetObject would wait for the first read, and Stat first)
	rc, _, _, err := minio.Core{Client: d.c}.GetObject(ctx, d.bucket, d.key(p), opts)
	if err != nil {
		var r minio.ErrorResponse
		if offset > 0 && errors.As(err, &r) && r.Code == "InvalidRange" {
			if _, serr := d.c.StatObject(ctx, d.bucket, d.key(p), minio.StatObjectOptions{}); serr != nil {
				return nil, d.wrap(p, serr)
			}
			return io.NopCloser(bytes.NewReader(nil)), nil // at or past the end
		}
		return nil, d.wrap(p, err)
	}
	return rc, nil
}

func (d *s3Driver) Stat(ctx context.Context, p string) (storagedriver.FileInfo, error) {
	info, err := d.c.StatObject(ctx, d.bucket, d.key(p), minio.StatObjectOptions{})
	if err == nil {
		return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{
			Path: p, Size: info.Size, ModTime: info.LastModified}}, nil
	}
	if !notFound(err) {
		return nil, d.wrap(p, err)
	}
	// a directory is a prefix some key has
	prefix := d.key(p) + "/"
	if p == "/" {
		prefix = d.key("")
	}
	for o := range d.c.ListObjects(ctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix, MaxKeys: 1}) {
		if o.Err != nil {
			return nil, d.wrap(p, o.Err)
		}
		return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: p, IsDir: true}}, nil
	}
	return nil, storagedriver.PathNotFoundError{Path: p, DriverName: s3DriverName}
}

func (d *s3Driver) List(ctx context.Context, p string) ([]string, error) {
	prefix := d.key(p)
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	var out []string
	for o := range d.c.ListObjects(ctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if o.Err != nil {
			return nil, d.wrap(p, o.Err)
		}
		q := d.path(o.Key)
		if strings.HasPrefix(q+"/", chunkRoot+"/") {
			continue
		}
		out = append(out, q)
	}
	if len(out) == 0 && p != "/" {
		return nil, storagedriver.PathNotFoundError{Path: p, DriverName: s3DriverName}
	}
	return out, nil
}

func (d *s3Driver) Move(ctx context.Context, src, dst string) error {
	from := minio.CopySrcOptions{Bucket: d.bucket, Object: d.key(src)}
	_, err := d.c.CopyObject(ctx, minio.CopyDestOptions{Bucket: d.bucket, Object: d.key(dst)}, from)
	var r minio.ErrorResponse
	if errors.As(err, &r) && (r.Code == "EntityTooLarge" || r.Code == "InvalidRequest") {
		err = d.copy(ctx, dst, []minio.CopySrcOptions{from}) // over 5 GiB: copied in parts
	}
	if err != nil {
		return d.wrap(src, err)
	}
	return d.wrap(src, d.c.RemoveObject(ctx, d.bucket, d.key(src), minio.RemoveObjectOptions{}))
}

// copy makes dst the concatenation of srcs, server-side (ComposeObject copies in parts
// when an object is over 5 GiB).
func (d *s3Driver) copy(ctx context.Context, dst string, srcs []minio.CopySrcOptions) error {
	_, err := d.c.ComposeObject(ctx, minio.CopyDestOptions{Bucket: d.bucket, Object: d.key(dst)}, srcs...)
	return err
}

func (d *s3Driver) Delete(ctx context.Context, p string) error {
	keys := make(chan minio.ObjectInfo)
	found := false
	listErr := make(chan error, 1)
	go func() {
		defer close(keys)
		for _, prefix := range []string{d.key(p), d.key(chunkRoot + p)} {
			for o := range d.c.ListObjects(ctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
				if o.Err != nil {
					listErr <- o.Err
					return
				}
				// the path itself, or what is below it (not /a/bc for /a/b)
				if o.Key != prefix && !strings.HasPrefix(o.Key, prefix+"/") {
					continue
				}
				found = true
				keys <- o
			}
		}
		listErr <- nil
	}()
	var errs []error
	for e := range d.c.RemoveObjects(ctx, d.bucket, keys, minio.RemoveObjectsOptions{}) {
		errs = append(errs, e.Err)
	}
	if err := <-listErr; err != nil {
		return d.wrap(p, err)
	}
	if err := errors.Join(errs...); err != nil {
		return d.wrap(p, err)
	}
	if !found {
		return storagedriver.PathNotFoundError{Path: p, DriverName: s3DriverName}
	}
	return nil
}

func (d *s3Driver) RedirectURL(*http.Request, string) (string, error) { return "", nil }

func (d *s3Driver) Walk(ctx context.Context, p string, f storagedriver.WalkFn, opts ...func(*storagedriver.WalkOptions)) error {
	return storagedriver.WalkFallback(ctx, d, p, f, opts...)
}

// chunks lists the chunk objects of p in order, with their sizes.
func (d *s3Driver) chunks(ctx context.Context, p string) ([]minio.ObjectInfo, error) {
	var out []minio.ObjectInfo
	for o := range d.c.ListObjects(ctx, d.bucket, minio.ListObjectsOptions{Prefix: d.key(chunkRoot+p) + "/", Recursive: true}) {
		if o.Err != nil {
			return nil, o.Err
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (d *s3Driver) Writer(ctx context.Context, p string, appendMode bool) (storagedriver.FileWriter, error) {
	w := &s3Writer{d: d, ctx: ctx, path: p}
	cs, err := d.chunks(ctx, p)
	if err != nil {
		return nil, d.wrap(p, err)
	}
	if !appendMode {
		if len(cs) > 0 {
			if err := d.Delete(ctx, chunkRoot+p); err != nil {
				return nil, err
			}
		}
		return w, nil
	}
	if len(cs) == 0 {
		// appending to a committed file: its object becomes the first chunk
		info, err := d.c.StatObject(ctx, d.bucket, d.key(p), minio.StatObjectOptions{})
		if err != nil {
			return nil, d.wrap(p, err)
		}
		if info.Size > 0 {
			first := fmt.Sprintf("%s%s/%020d", chunkRoot, p, 0)
			if err := d.copy(ctx, first, []minio.CopySrcOptions{{Bucket: d.bucket, Object: d.key(p)}}); err != nil {
				return nil, d.wrap(p, err)
			}
			w.keys, w.sizes = []string{d.key(first)}, []int64{info.Size}
		}
		w.size, w.flushed = info.Size, info.Size
		return w, nil
	}
	for _, c := range cs {
		w.size += c.Size
		w.keys = append(w.keys, c.Key)
		w.sizes = append(w.sizes, c.Size)
	}
	w.flushed = w.size
	return w, nil
}

// s3Writer buffers what is written and stores it as chunk objects named by their offset.
type s3Writer struct {
	d                            *s3Driver
	ctx                          context.Context
	path                         string
	buf                          bytes.Buffer
	size                         int64    // bytes written in all sessions
	flushed                      int64    // bytes in chunk objects
	keys                         []string // those chunk objects' keys, in order
	sizes                        []int64  // and their sizes
	closed, committed, cancelled bool
}

func (w *s3Writer) Write(p []byte) (int, error) {
	switch {
	case w.closed:
		return 0, fmt.Errorf("s3: %s: already closed", w.path)
	case w.committed:
		return 0, fmt.Errorf("s3: %s: already committed", w.path)
	case w.cancelled:
		return 0, fmt.Errorf("s3: %s: already cancelled", w.path)
	}
	n, _ := w.buf.Write(p)
	w.size += int64(n)
	if w.buf.Len() >= chunkTarget {
		if err := w.flush(); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (w *s3Writer) flush() error {
	if w.buf.Len() == 0 {
		return nil
	}
	n := int64(w.buf.Len())
	if err := w.putChunk(w.flushed, w.buf.Bytes()); err != nil {
		return err
	}
	w.flushed += n
	w.buf.Reset()
	return nil
}

// putChunk stores data as the chunk at offset.
func (w *s3Writer) putChunk(offset int64, data []byte) error {
	k := w.d.key(fmt.Sprintf("%s%s/%020d", chunkRoot, w.path, offset))
	_, err := w.d.c.PutObject(w.ctx, w.d.bucket, k, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true})
	if err == nil {
		w.keys = append(w.keys, k)
		w.sizes = append(w.sizes, int64(len(data)))
	}
	return w.d.wrap(w.path, err)
}

// removeChunks deletes the chunk objects this writer knows of.
func (w *s3Writer) removeChunks(ctx context.Context) error {
	if len(w.keys) == 0 {
		return nil
	}
	ch := make(chan minio.ObjectInfo, len(w.keys))
	for _, k := range w.keys {
		ch <- minio.ObjectInfo{Key: k}
	}
	close(ch)
	var errs []error
	for e := range w.d.c.RemoveObjects(ctx, w.d.bucket, ch, minio.RemoveObjectsOptions{}) {
		errs = append(errs, e.Err)
	}
	w.keys, w.sizes = nil, nil
	return w.d.wrap(w.path, errors.Join(errs...))
}

func (w *s3Writer) Size() int64 { return w.size }

func (w *s3Writer) Close() error {
	if w.closed {
		return fmt.Errorf("s3: %s: already closed", w.path)
	}
	w.closed = true
	if w.committed || w.cancelled {
		return nil
	}
	if w.size == 0 {
		// an empty file still exists until committed: a zero-byte chunk says so, for the
		// next session's append (an upload is opened, then written to by later requests)
		return w.putChunk(0, nil)
	}
	return w.flush()
}

func (w *s3Writer) Cancel(ctx context.Context) error {
	if w.closed {
		return fmt.Errorf("s3: %s: already closed", w.path)
	}
	w.cancelled = true
	w.buf.Reset()
	return w.removeChunks(ctx)
}

// Commit joins the chunks into the file's object and removes them.
func (w *s3Writer) Commit(ctx context.Context) error {
	switch {
	case w.closed:
		return fmt.Errorf("s3: %s: already closed", w.path)
	case w.committed:
		return fmt.Errorf("s3: %s: already committed", w.path)
	case w.cancelled:
		return fmt.Errorf("s3: %s: already cancelled", w.path)
	}
	w.committed = true
	if w.flushed == 0 {
		// everything is in the buffer (the usual upload: one request): the object at once
		if err := w.d.PutContent(ctx, w.path, w.buf.Bytes()); err != nil {
			return err
		}
		w.buf.Reset()
		return w.removeChunks(ctx)
	}
	if err := w.flush(); err != nil {
		return err
	}
	// the chunks this writer listed when it opened and those it wrote: the file's own
	// session (appends to one file are one at a time, as distribution's uploads are)
	var cs []minio.ObjectInfo // the empty ones only mark an empty file
	for i, k := range w.keys {
		if w.sizes[i] > 0 {
			cs = append(cs, minio.ObjectInfo{Key: k, Size: w.sizes[i]})
		}
	}
	var err error
	switch {
	case len(cs) == 0:
		err = w.d.PutContent(ctx, w.path, nil)
	case len(cs) == 1:
		_, err = w.d.c.CopyObject(ctx, minio.CopyDestOptions{Bucket: w.d.bucket, Object: w.d.key(w.path)},
			minio.CopySrcOptions{Bucket: w.d.bucket, Object: cs[0].Key})
	case composable(cs):
		srcs := make([]minio.CopySrcOptions, len(cs))
		for i, c := range cs {
			srcs[i] = minio.CopySrcOptions{Bucket: w.d.bucket, Object: c.Key}
		}
		err = w.d.copy(ctx, w.path, srcs)
	default:
		err = w.concat(ctx, cs)
	}
	if err != nil {
		return w.d.wrap(w.path, err)
	}
	return w.removeChunks(ctx)
}

// composable says whether S3 can join the chunks itself: a single object, or every part
// but the last at least minComposePart.
func composable(cs []minio.ObjectInfo) bool {
	for _, c := range cs[:len(cs)-1] {
		if c.Size < minComposePart {
			return false
		}
	}
	return true
}

// concat streams the chunks, one after the other, into the file's object.
func (w *s3Writer) concat(ctx context.Context, cs []minio.ObjectInfo) error {
	var total int64
	readers := make([]io.Reader, len(cs))
	for i, c := range cs {
		total += c.Size
		readers[i] = &lazyObject{ctx: ctx, c: w.d.c, bucket: w.d.bucket, key: c.Key}
	}
	defer func() {
		for _, r := range readers {
			r.(*lazyObject).close()
		}
	}()
	_, err := w.d.c.PutObject(ctx, w.d.bucket, w.d.key(w.path), io.MultiReader(readers...), total,
		minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: chunkTarget})
	return err
}

// lazyObject opens an object when it is first read.
type lazyObject struct {
	ctx    context.Context
	c      *minio.Client
	bucket string
	key    string
	obj    *minio.Object
}

func (l *lazyObject) Read(p []byte) (int, error) {
	if l.obj == nil {
		o, err := l.c.GetObject(l.ctx, l.bucket, l.key, minio.GetObjectOptions{})
		if err != nil {
			return 0, err
		}
		l.obj = o
	}
	return l.obj.Read(p)
}

func (l *lazyObject) close() {
	if l.obj != nil {
		l.obj.Close()
	}
}
