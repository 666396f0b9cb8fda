// Package ship copies trees (tree.Tree) to hosts, sending only what differs.
//
// On a host, a tree shipped to DEST (e.g. /var/lib/sealos/data/default/rootfs) lives in a
// generation directory beside it, and DEST is a symlink to the generation in use:
//
//	DEST -> .NAME.<manifest digest, 16 hex>.<random>
//	.NAME.<digest>.<random>.manifest   the tree's manifest (path -> type, mode, sha256)
//
// An update stages a new generation: the current one hard-linked (cp -al), paths that are
// gone removed, changed files streamed as tar (zstd-compressed when the host has zstd,
// else gzip) and extracted by GNU tar, which replaces an existing file by unlinking it
// first (its default), so the current generation is never written to. Each host gets
// several streams at once (Options.Streams), each extracted by its own tar: creating
// many small files is latency bound. Only a fully received stage is renamed into place
// and DEST switched to it by an atomic rename of a symlink; a cut connection leaves DEST
// as it was, and the next run removes the stale stage. A host whose DEST already points
// at the wanted digest is unchanged: nothing is read or sent but one readlink.
//
// Hosts that need the same bytes (same old and new manifest) share one stream: the tar is
// built and compressed once and fanned out to all of them.
package ship

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/cluster-image/sealos/apply/transport"
	"github.com/cluster-image/sealos/apply/tree"
)

// Compression of the stream.
const (
	CompressAuto = "" // zstd when the host has it, else gzip
	CompressZstd = "zstd"
	CompressGzip = "gzip"
	CompressNone = "none"
)

// CheckCompression refuses a compression Ship does not know.
func CheckCompression(c string) error {
	switch c {
	case CompressAuto, CompressZstd, CompressGzip, CompressNone:
		return nil
	}
	return fmt.Errorf("compression %q: use zstd, gzip or none (empty: zstd when the host has it, else gzip)", c)
}

// Options tune Ship.
type Options struct {
	// Force sends every file, as if the host had nothing.
	Force bool
	// Compression of the stream; CompressAuto when empty.
	Compression string
	// Progress, when set, counts bytes as they are sent.
	Progress *Progress
	// Streams is how many tar streams each host receives at once (DefaultStreams when 0).
	Streams int
	// OnFile, when set, is called after each file is put in a stream (progress).
	OnFile func(path string, size int64)
	// Log receives one line per host when set.
	Log io.Writer
}

// Progress counts bytes; safe for concurrent use, read it while Ship runs.
type Progress struct {
	Files   atomic.Int64 // files put in a stream
	Raw     atomic.Int64 // file bytes put in a stream
	Wire    atomic.Int64 // bytes written to hosts, after compression (once per host)
	Skipped atomic.Int64 // hosts found up to date
}

// Result is what Ship did on one host.
type Result struct {
	Host      string
	Digest    string // manifest digest now in use on the host
	Unchanged bool
	Files     int   // files sent
	Bytes     int64 // file bytes sent (before compression)
	Removed   int   // paths removed
}

// Target is one tree to put on one host.
type Target struct {
	Host string
	Tree *tree.Tree
}

// Ship puts each target's tree at dest on its host, hosts in parallel (bounded by the
// pool). The returned results are in target order; hosts that failed are missing from
// them and named in the error (a transport.HostError each).
func Ship(ctx context.Context, pool *transport.Pool, dest string, targets []Target, opts Options) ([]Result, error) {
	if !path.IsAbs(dest) || path.Clean(dest) != dest || dest == "/" {
		return nil, fmt.Errorf("ship: destination %q must be a clean absolute path", dest)
	}
	if err := CheckCompression(opts.Compression); err != nil {
		return nil, fmt.Errorf("ship: %w", err)
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	hosts := make([]string, len(targets))
	byHost := map[string]*hostJob{}
	for i, t := range targets {
		hosts[i] = t.Host
		byHost[t.Host] = &hostJob{target: t, manifest: t.Tree.Manifest(), digest: t.Tree.Digest()}
	}

	// Phase 1, per host: look at what it has, prepare a stage.
	err1 := pool.ForEach(ctx, hosts, func(ctx context.Context, tr transport.Transport) error {
		return byHost[tr.Host()].prepare(ctx, tr, dest, opts)
	})
	recordErrors(byHost, err1) // e.g. hosts that could not be reached

	// Phase 2: one stream per group of hosts needing the same bytes.
	groups := map[string][]*hostJob{}
	var order []string
	for _, h := range hosts {
		j := byHost[h]
		if j.err != nil || j.unchanged {
			continue
		}
		key := j.oldDigest + ">" + j.digest
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], j)
	}
	var wg sync.WaitGroup
	for _, key := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendGroup(ctx, pool, groups[key], opts)
		}()
	}
	wg.Wait()

	// Phase 3, per host: move the stage into place.
	var pending []string
	for _, h := range hosts {
		if j := byHost[h]; j.err == nil && !j.unchanged {
			pending = append(pending, h)
		}
	}
	err3 := pool.ForEach(ctx, pending, func(ctx context.Context, tr transport.Transport) error {
		return byHost[tr.Host()].commit(ctx, tr, dest)
	})
	recordErrors(byHost, err3)

	var results []Result
	var errs []error
	for _, h := range hosts {
		j := byHost[h]
		if j.err != nil {
			errs = append(errs, &transport.HostError{Host: h, Err: j.err})
			continue
		}
		results = append(results, j.result(h))
		if opts.Log != nil {
			r := j.result(h)
			if r.Unchanged {
				fmt.Fprintf(opts.Log, "%s: %s unchanged\n", h, dest)
			} else {
				fmt.Fprintf(opts.Log, "%s: %s: sent %d files (%s), removed %d\n", h, dest, r.Files, humanBytes(r.Bytes), r.Removed)
			}
		}
	}
	return results, errors.Join(errs...)
}

// recordErrors sets the error of each host named in err (transport.HostErrors joined by
// Pool.ForEach) that has none yet.
func recordErrors(byHost map[string]*hostJob, err error) {
	for _, e := range flatten(err) {
		var he *transport.HostError
		if errors.As(e, &he) {
			if j, ok := byHost[he.Host]; ok && j.err == nil {
				j.err = he.Err
			}
		}
	}
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

type hostJob struct {
	target   Target
	manifest *tree.Manifest
	digest   string

	tr          transport.Transport
	cur         string // current generation name ("" when none)
	oldDigest   string
	diff        tree.Diff
	stage       string // stage directory
	gen         string // the new generation's name
	compression string
	unchanged   bool
	err         error
	sentFiles   int
	sentBytes   int64
}

func (j *hostJob) result(h string) Result {
	return Result{Host: h, Digest: j.digest, Unchanged: j.unchanged, Files: j.sentFiles, Bytes: j.sentBytes, Removed: len(j.diff.Remove)}
}

// probeScript prints the current generation, whether the host has zstd, and the current
// manifest, unless the current generation already has the wanted digest (then only
// "unchanged", so an unchanged re-run reads a few bytes per host).
const probeScript = `d=%s; want=%s
l=$(readlink "$d" 2>/dev/null || true)
echo "cur=$l"
case "$l" in "$want"*) [ -n "$want" ] && echo unchanged && exit 0;; esac
if command -v zstd >/dev/null 2>&1 && tar --help 2>/dev/null | grep -q -- --zstd; then echo zstd=1; fi
if [ -n "$l" ] && [ -f "$(dirname "$d")/$l.manifest" ]; then echo manifest=1; cat "$(dirname "$d")/$l.manifest"; fi
`

func (j *hostJob) prepare(ctx context.Context, tr transport.Transport, dest string, opts Options) (err error) {
	defer func() { j.err = err }()
	j.tr = tr
	base := path.Base(dest)
	prefix := "." + base + "."
	want := prefix + j.digest[:16] + "."
	if opts.Force {
		want = ""
	}
	out, err := transport.Output(ctx, tr, fmt.Sprintf(probeScript, transport.Quote(dest), transport.Quote(want)))
	if err != nil {
		return fmt.Errorf("look at %s: %w", dest, err)
	}
	head, body, _ := bytes.Cut(out, []byte("manifest=1\n"))
	var hasZstd bool
	for _, line := range strings.Split(string(head), "\n") {
		switch {
		case strings.HasPrefix(line, "cur="):
			j.cur = strings.TrimPrefix(line, "cur=")
		case line == "zstd=1":
			hasZstd = true
		}
	}
	if strings.HasPrefix(j.cur, prefix+j.digest[:16]+".") && !opts.Force {
		j.unchanged = true
		opts.Progress.Skipped.Add(1)
		return nil
	}
	var old *tree.Manifest
	if len(body) > 0 && !opts.Force && strings.HasPrefix(j.cur, prefix) {
		if m, err := tree.ParseManifest(body); err == nil {
			old = m
			j.oldDigest = m.Digest()
		}
	}
	j.diff = tree.Compare(old, j.manifest)
	switch c := opts.Compression; {
	case c == CompressAuto && hasZstd, c == CompressZstd:
		j.compression = CompressZstd
	case c == CompressAuto, c == CompressGzip:
		j.compression = CompressGzip
	default:
		j.compression = CompressNone
	}
	j.gen = prefix + j.digest[:16] + "." + randHex(4)
	parent := path.Dir(dest)
	j.stage = path.Join(parent, j.gen+".stage")
	seed := ""
	if old != nil {
		seed = fmt.Sprintf(`cp -al %s/. "$s"/`, transport.Quote(path.Join(parent, j.cur)))
	}
	// Remove stale stages of earlier cut runs, seed the stage from the current generation,
	// then remove what is gone (NUL-separated paths on stdin).
	script := fmt.Sprintf(`set -e
p=%s; s=%s
mkdir -p "$p"
for x in "$p"/%s*.stage; do [ -e "$x" ] && rm -rf "$x"; done
mkdir "$s"
%s
cd "$s" && xargs -0 -r rm -rf --`, transport.Quote(parent), transport.Quote(j.stage), transport.Quote(prefix), seed)
	var list bytes.Buffer
	for _, p := range j.diff.Remove {
		list.WriteString(p)
		list.WriteByte(0)
	}
	if err := tr.Run(ctx, script, transport.RunOptions{Stdin: &list}); err != nil {
		return fmt.Errorf("prepare %s: %w", j.stage, err)
	}
	return nil
}

func (j *hostJob) commit(ctx context.Context, tr transport.Transport, dest string) error {
	parent := path.Dir(dest)
	if err := tr.Copy(ctx, bytes.NewReader(j.manifest.Marshal()), path.Join(parent, j.gen+".manifest"), 0o600); err != nil {
		j.err = err
		return err
	}
	prefix := "." + path.Base(dest) + "."
	script := fmt.Sprintf(`set -e
p=%s; d=%s; g=%s
mv "$p/$g.stage" "$p/$g"
if [ -d "$d" ] && [ ! -L "$d" ]; then rm -rf "$d"; fi
ln -sfn "$g" "$p/.$g.lnk"
mv -T "$p/.$g.lnk" "$d"
for x in "$p"/%s*; do case "$x" in "$p/$g"|"$p/$g.manifest") ;; *) rm -rf "$x";; esac; done`,
		transport.Quote(parent), transport.Quote(dest), transport.Quote(j.gen), transport.Quote(prefix))
	if err := tr.Run(ctx, script, transport.RunOptions{}); err != nil {
		j.err = fmt.Errorf("switch %s to the new tree: %w", dest, err)
		return j.err
	}
	return nil
}

// sendGroup builds one tar stream for hosts that need the same entries and fans it out.
func sendGroup(ctx context.Context, pool *transport.Pool, jobs []*hostJob, opts Options) {
	send := jobs[0].diff.Send
	comp := jobs[0].compression
	// Hosts of a group may differ in compression support: split them.
	var same, other []*hostJob
	for _, j := range jobs {
		if j.compression == comp {
			same = append(same, j)
		} else {
			other = append(other, j)
		}
	}
	if len(other) > 0 {
		sendGroup(ctx, pool, other, opts)
	}
	jobs = same
	if len(send) == 0 {
		return
	}
	// Several streams per host, each extracted by its own tar: file creation is latency
	// bound, so parallel extraction on the host is faster than one tar.
	parts := partition(send, opts.Streams)
	var errs [][]error
	if len(parts) > 1 {
		// Directories and links go first, alone: a tar that meets a directory entry that
		// another tar has just created as a parent rmdirs and recreates it (GNU tar's
		// default), and a file open in that window fails with ENOENT.
		var dirs, files []tree.Entry
		for _, e := range parts[0] {
			if e.Type == tree.TypeFile {
				files = append(files, e)
			} else {
				dirs = append(dirs, e)
			}
		}
		parts[0] = files
		if len(dirs) > 0 {
			errs = append(errs, sendStream(ctx, jobs, dirs, comp, opts))
		}
	}
	first := len(errs)
	errs = append(errs, make([][]error, len(parts))...)
	var wg sync.WaitGroup
	for k, part := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[first+k] = sendStream(ctx, jobs, part, comp, opts)
		}()
	}
	wg.Wait()
	files, bytes := 0, tree.Diff{Send: send}.Bytes()
	for _, e := range send {
		if e.Type == tree.TypeFile {
			files++
		}
	}
	for i, j := range jobs {
		for k := range errs {
			if errs[k][i] != nil && j.err == nil {
				j.err = errs[k][i]
			}
		}
		if j.err == nil {
			j.sentFiles, j.sentBytes = files, bytes
		}
	}
}

// DefaultStreams is how many tar streams a host receives at once.
const DefaultStreams = 4

// partition splits entries into n streams: the first has every directory and symlink (in
// order) and its share of the files; the files are dealt by size so streams are even.
func partition(send []tree.Entry, n int) [][]tree.Entry {
	if n <= 0 {
		n = DefaultStreams
	}
	var files int
	for _, e := range send {
		if e.Type == tree.TypeFile {
			files++
		}
	}
	if files < 2*n {
		n = 1
	}
	parts := make([][]tree.Entry, n)
	sizes := make([]int64, n)
	for _, e := range send {
		if e.Type != tree.TypeFile {
			parts[0] = append(parts[0], e)
			continue
		}
		k := 0
		for i := range sizes {
			if sizes[i] < sizes[k] {
				k = i
			}
		}
		parts[k] = append(parts[k], e)
		sizes[k] += e.Size + 512
	}
	return parts
}

// sendStream sends one tar stream of send to every job's stage, compressed once and fanned
// out; it returns each job's error.
func sendStream(ctx context.Context, jobs []*hostJob, send []tree.Entry, comp string, opts Options) []error {
	errs := make([]error, len(jobs))
	fan := &fanout{}
	readers := make([]*io.PipeReader, len(jobs))
	for i := range jobs {
		pr, pw := io.Pipe()
		readers[i] = pr
		fan.ws = append(fan.ws, pw)
	}
	fan.failed = make([]bool, len(jobs))
	fan.progress = opts.Progress
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := fmt.Sprintf(`tar -x %s --no-same-owner -C %s -f -; rc=$?; cat >/dev/null; exit $rc`, tarFlag(j.compression), transport.Quote(j.stage))
			// A big tree may take long: ctx bounds the stream, not the per-command timeout.
			err := j.tr.Run(ctx, cmd, transport.RunOptions{Stdin: readers[i], Timeout: -1})
			if err == nil && fan.hasFailed(i) {
				err = errors.New("the host stopped reading the stream")
			}
			if err != nil {
				errs[i] = fmt.Errorf("send files: %w", err)
				readers[i].CloseWithError(err)
				return
			}
			readers[i].Close()
		}()
	}
	// Big writes: each write becomes SSH packets and wake-ups on every host.
	bw := bufio.NewWriterSize(fan, 1<<20)
	err := writeStream(bw, send, sourceOf(jobs[0]), comp, opts)
	if err == nil {
		err = bw.Flush()
	}
	for _, w := range fan.ws {
		if err != nil {
			w.CloseWithError(err)
		} else {
			w.Close()
		}
	}
	wg.Wait()
	if err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("send files: %w", err)
			}
		}
	}
	return errs
}

type opener interface {
	Open(p string) (io.ReadCloser, error)
}

func sourceOf(j *hostJob) opener { return j.target.Tree }

func tarFlag(c string) string {
	switch c {
	case CompressZstd:
		return "--zstd"
	case CompressGzip:
		return "-z"
	}
	return ""
}

func writeStream(w io.Writer, send []tree.Entry, src opener, comp string, opts Options) error {
	p := opts.Progress
	var cw io.WriteCloser
	switch comp {
	case CompressZstd:
		enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			return err
		}
		cw = enc
	case CompressGzip:
		gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			return err
		}
		cw = gz
	default:
		cw = nopCloser{w}
	}
	tw := tar.NewWriter(cw)
	now := time.Now()
	for _, e := range send {
		h := &tar.Header{Name: e.Path, Mode: int64(e.Mode), ModTime: now, Uname: "root", Gname: "root", Format: tar.FormatPAX}
		switch e.Type {
		case tree.TypeDir:
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		case tree.TypeSymlink:
			h.Typeflag = tar.TypeSymlink
			h.Linkname = e.Link
		case tree.TypeFile:
			h.Typeflag = tar.TypeReg
			h.Size = e.Size
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.Type == tree.TypeFile {
			f, err := src.Open(e.Path)
			if err != nil {
				return fmt.Errorf("read %s: %w", e.Path, err)
			}
			n, err := io.Copy(tw, f)
			f.Close()
			if err == nil && n != e.Size {
				err = fmt.Errorf("%s changed while being sent (size %d, want %d)", e.Path, n, e.Size)
			}
			if err != nil {
				return err
			}
			p.Files.Add(1)
			p.Raw.Add(n)
			if opts.OnFile != nil {
				opts.OnFile(e.Path, n)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return cw.Close()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// fanout writes to every pipe that has not failed; it fails only when all have.
type fanout struct {
	mu       sync.Mutex
	ws       []*io.PipeWriter
	failed   []bool
	progress *Progress
}

func (f *fanout) Write(p []byte) (int, error) {
	alive := 0
	for i, w := range f.ws {
		if f.hasFailed(i) {
			continue
		}
		if _, err := w.Write(p); err != nil {
			f.mu.Lock()
			f.failed[i] = true
			f.mu.Unlock()
			continue
		}
		f.progress.Wire.Add(int64(len(p)))
		alive++
	}
	if alive == 0 {
		return 0, errors.New("every host stopped reading")
	}
	return len(p), nil
}

func (f *fanout) hasFailed(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed[i]
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
