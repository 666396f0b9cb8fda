package client

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Progress shows, per blob, how many bytes have moved. On a terminal it redraws one line
// per active blob a few times a second; otherwise it prints one plain line when a blob
// is done, so logs stay readable. A nil *Progress prints nothing. Safe for concurrent use.
type Progress struct {
	w   io.Writer
	tty bool

	mu      sync.Mutex
	blobs   map[v1.Hash]*blob
	order   []v1.Hash
	drawn   int // lines of active blobs drawn last time (TTY)
	start   time.Time
	stop    chan struct{}
	stopped chan struct{}
}

type blob struct {
	action  string // "push" or "pull"
	total   int64
	n       atomic.Int64
	started bool
	done    bool
	printed bool
	note    string
}

// NewProgress reports to w; tty selects the redrawing display.
func NewProgress(w io.Writer, tty bool) *Progress {
	p := &Progress{w: w, tty: tty, blobs: map[v1.Hash]*blob{}, start: time.Now()}
	if tty {
		p.stop, p.stopped = make(chan struct{}), make(chan struct{})
		go p.loop()
	}
	return p
}

func (p *Progress) loop() {
	defer close(p.stopped)
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.mu.Lock()
			p.redraw()
			p.mu.Unlock()
			return
		case <-t.C:
			p.mu.Lock()
			p.redraw()
			p.mu.Unlock()
		}
	}
}

// Close draws the final state of an operation that succeeded and stops the display.
// Blobs never opened are reported as already present at the target.
func (p *Progress) Close() { p.CloseWith(nil) }

// CloseWith draws the final state and stops the display. After a failure (err not nil)
// the blobs that did not finish are reported as failed, not as present.
func (p *Progress) CloseWith(err error) {
	if p == nil {
		return
	}
	p.mu.Lock()
	for _, h := range p.order {
		b := p.blobs[h]
		switch {
		case b.done:
		case err != nil:
			b.done, b.note = true, blobFailed
		case !b.started:
			b.done, b.note = true, blobExisted
		}
	}
	if !p.tty {
		p.flushPlain()
	}
	p.mu.Unlock()
	if p.tty {
		select {
		case <-p.stopped:
		default:
			close(p.stop)
			<-p.stopped
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if line := p.summary(); line != "" {
		fmt.Fprintln(p.w, line)
	}
}

// summary is one line of totals: blobs and bytes moved, time, rate, blobs skipped.
func (p *Progress) summary() string {
	var moved, skipped, failed int
	var bytes int64
	action := ""
	for _, h := range p.order {
		b := p.blobs[h]
		if action == "" {
			action = b.action
		}
		if b.note == blobFailed {
			failed++
			continue
		}
		if b.note != "" {
			skipped++
			continue
		}
		if b.done {
			moved++
			bytes += b.n.Load()
		}
	}
	if moved+skipped+failed == 0 {
		return ""
	}
	d := time.Since(p.start)
	verb := map[string]string{"push": "pushed", "pull": "pulled"}[action]
	if verb == "" {
		verb = "copied"
	}
	line := fmt.Sprintf("%s %d blobs (%s) in %.2fs, %.1f MB/s; %d skipped (already there)",
		verb, moved, humanBytes(bytes), d.Seconds(), float64(bytes)/d.Seconds()/1e6, skipped)
	if failed > 0 {
		line += fmt.Sprintf("; %d failed", failed)
	}
	return line
}

// expect registers a blob that an operation will move (or skip).
func (p *Progress) expect(action string, h v1.Hash, size int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.blobs[h]; ok {
		return
	}
	p.blobs[h] = &blob{action: action, total: size}
	p.order = append(p.order, h)
}

// counting reports whether bytes are shown as they move (a terminal display); otherwise
// only outcomes are printed and bodies need not be counted, which keeps sendfile usable.
func (p *Progress) counting() bool { return p != nil && p.tty }

// done records the outcome of blob h: "pushed"/"pulled" (all its bytes moved) or a note
// such as "exists" or "mounted".
func (p *Progress) done(h v1.Hash, outcome string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.blobs[h]
	if !ok {
		b = &blob{action: "copy"}
		p.blobs[h] = b
		p.order = append(p.order, h)
	}
	if b.done {
		return
	}
	b.started, b.done = true, true
	switch outcome {
	case blobPushed, "pulled":
		if b.total > 0 {
			b.n.Store(b.total)
		}
	default:
		b.note = outcome
	}
	if !p.tty {
		p.flushPlain()
	}
}

// reader counts rc's bytes against blob h.
func (p *Progress) reader(h v1.Hash, rc io.ReadCloser) io.ReadCloser {
	if p == nil {
		return rc
	}
	p.mu.Lock()
	b, ok := p.blobs[h]
	if !ok {
		b = &blob{action: "copy"}
		p.blobs[h] = b
		p.order = append(p.order, h)
	}
	b.started = true
	b.n.Store(0)
	p.mu.Unlock()
	return &countingReader{rc: rc, p: p, h: h, b: b}
}

func (p *Progress) finish(h v1.Hash, b *blob) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	if !p.tty {
		p.flushPlain()
	}
}

// flushPlain prints a line for every finished blob not printed yet. Caller holds mu.
func (p *Progress) flushPlain() {
	for _, h := range p.order {
		b := p.blobs[h]
		if b.done && !b.printed {
			b.printed = true
			fmt.Fprintln(p.w, p.line(h, b))
		}
	}
}

func (p *Progress) line(h v1.Hash, b *blob) string {
	id := h.Hex
	if len(id) > 12 {
		id = id[:12]
	}
	n := b.n.Load()
	switch {
	case b.note != "":
		return fmt.Sprintf("%s %s: %s", b.action, id, b.note)
	case b.done:
		return fmt.Sprintf("%s %s: done %s", b.action, id, humanBytes(n))
	case b.total > 0:
		return fmt.Sprintf("%s %s: %s / %s %3d%%", b.action, id, humanBytes(n), humanBytes(b.total), n*100/b.total)
	default:
		return fmt.Sprintf("%s %s: %s", b.action, id, humanBytes(n))
	}
}

// redraw prints finished blobs once, above a block of active ones that it rewrites in
// place. Caller holds mu.
func (p *Progress) redraw() {
	var sb strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA\x1b[J", p.drawn)
	}
	var active []v1.Hash
	for _, h := range p.order {
		b := p.blobs[h]
		switch {
		case b.done && !b.printed:
			b.printed = true
			sb.WriteString(p.line(h, b) + "\n")
		case b.started && !b.done:
			active = append(active, h)
		}
	}
	for _, h := range active {
		sb.WriteString(p.line(h, p.blobs[h]) + "\n")
	}
	p.drawn = len(active)
	if sb.Len() > 0 {
		io.WriteString(p.w, sb.String()) //nolint:errcheck // best effort display
	}
}

type countingReader struct {
	rc   io.ReadCloser
	p    *Progress
	h    v1.Hash
	b    *blob
	once sync.Once
}

func (r *countingReader) Read(buf []byte) (int, error) {
	n, err := r.rc.Read(buf)
	r.b.n.Add(int64(n))
	if err == io.EOF {
		r.once.Do(func() { r.p.finish(r.h, r.b) })
	}
	return n, err
}

func (r *countingReader) Close() error {
	if r.b.total > 0 && r.b.n.Load() >= r.b.total {
		r.once.Do(func() { r.p.finish(r.h, r.b) })
	}
	return r.rc.Close()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
