package kube

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Balancer is the local API balancer of a node when a cluster has several masters: a TCP
// proxy on 127.0.0.1:6443 that spreads connections over the apiservers that answer, so a
// kubelet (and kubectl) on the node keep working when a master is lost. TLS passes through
// untouched: the apiservers' certificates name 127.0.0.1.
type Balancer struct {
	Backends []string // host:port of each apiserver
	// ProbeInterval is how often every backend is dialed to see that it answers (2 s
	// when zero); a failed dial of a connection marks its backend down at once.
	ProbeInterval time.Duration
	DialTimeout   time.Duration // 2 s when zero
	Log           *slog.Logger

	next atomic.Uint64
	mu   sync.Mutex
	down map[string]bool
}

func (b *Balancer) dialTimeout() time.Duration {
	if b.DialTimeout > 0 {
		return b.DialTimeout
	}
	return 2 * time.Second
}

func (b *Balancer) log() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (b *Balancer) setDown(backend string, down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down == nil {
		b.down = map[string]bool{}
	}
	if b.down[backend] != down {
		b.log().Info("backend", "addr", backend, "up", !down)
	}
	b.down[backend] = down
}

// order is the backends to try for one connection: the healthy ones round robin, then the
// ones marked down (a probe may be behind).
func (b *Balancer) order() []string {
	n := len(b.Backends)
	start := int(b.next.Add(1)-1) % n
	b.mu.Lock()
	defer b.mu.Unlock()
	var up, down []string
	for i := range n {
		be := b.Backends[(start+i)%n]
		if b.down[be] {
			down = append(down, be)
		} else {
			up = append(up, be)
		}
	}
	return append(up, down...)
}

// Serve accepts connections on ln until ctx is done.
func (b *Balancer) Serve(ctx context.Context, ln net.Listener) error {
	if len(b.Backends) == 0 {
		return errors.New("balancer: no backend")
	}
	go func() { <-ctx.Done(); ln.Close() }()
	go b.probe(ctx)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go b.handle(ctx, c)
	}
}

func (b *Balancer) probe(ctx context.Context) {
	every := b.ProbeInterval
	if every <= 0 {
		every = 2 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, be := range b.Backends {
			c, err := net.DialTimeout("tcp", be, b.dialTimeout())
			if err == nil {
				c.Close()
			}
			b.setDown(be, err != nil)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *Balancer) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	d := net.Dialer{Timeout: b.dialTimeout()}
	for _, be := range b.order() {
		up, err := d.DialContext(ctx, "tcp", be)
		if err != nil {
			b.setDown(be, true)
			continue
		}
		defer up.Close()
		pipe(c, up)
		return
	}
	b.log().Warn("no apiserver answers", "backends", b.Backends)
}

// pipe copies both ways until both directions end, passing half-closes on.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}
