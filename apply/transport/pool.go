package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// DefaultParallel bounds how many hosts a Pool works on at once.
const DefaultParallel = 16

// Pool holds one Transport per host, dialed on first use: Local for this machine, SSH
// otherwise. It is safe for concurrent use.
type Pool struct {
	// Config returns the SSH settings for a host.
	Config func(host string) SSHConfig
	// Parallel bounds ForEach; DefaultParallel when zero.
	Parallel int

	mu    sync.Mutex
	conns map[string]Transport
	dials map[string]*sync.Mutex
}

// NewPool returns a Pool that logs in to every host with cfg.
func NewPool(cfg SSHConfig) *Pool {
	return &Pool{Config: func(string) SSHConfig { return cfg }}
}

// Get returns the transport for host, connecting if needed.
func (p *Pool) Get(ctx context.Context, host string) (Transport, error) {
	p.mu.Lock()
	if p.conns == nil {
		p.conns = map[string]Transport{}
		p.dials = map[string]*sync.Mutex{}
	}
	if t, ok := p.conns[host]; ok {
		p.mu.Unlock()
		return t, nil
	}
	dm, ok := p.dials[host]
	if !ok {
		dm = &sync.Mutex{}
		p.dials[host] = dm
	}
	p.mu.Unlock()

	dm.Lock()
	defer dm.Unlock()
	p.mu.Lock()
	t, ok := p.conns[host]
	p.mu.Unlock()
	if ok {
		return t, nil
	}
	if IsLocal(host) {
		t = NewLocal(host)
	} else {
		s, err := DialSSH(ctx, host, p.Config(host))
		if err != nil {
			return nil, err
		}
		t = s
	}
	p.mu.Lock()
	p.conns[host] = t
	p.mu.Unlock()
	return t, nil
}

// Drop closes and forgets host's transport, so the next Get reconnects.
func (p *Pool) Drop(host string) {
	p.mu.Lock()
	t, ok := p.conns[host]
	delete(p.conns, host)
	p.mu.Unlock()
	if ok {
		t.Close()
	}
}

// ForEach runs fn for every host, at most Parallel at once, and waits for all of them.
// A host whose fn fails does not stop the others; the result joins every error, each
// naming its host. A failed connection is dropped so a later call reconnects.
func (p *Pool) ForEach(ctx context.Context, hosts []string, fn func(ctx context.Context, t Transport) error) error {
	n := p.Parallel
	if n <= 0 {
		n = DefaultParallel
	}
	sem := make(chan struct{}, n)
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = fmt.Errorf("%s: %w", h, ctx.Err())
				return
			}
			defer func() { <-sem }()
			t, err := p.Get(ctx, h)
			if err == nil {
				err = fn(ctx, t)
			}
			if err != nil {
				var ee *ExitError
				if !errors.As(err, &ee) {
					p.Drop(h)
				}
				errs[i] = &HostError{Host: h, Err: err}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close closes every connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for h, t := range p.conns {
		t.Close()
		delete(p.conns, h)
	}
	return nil
}

// HostError is the failure of work on one host.
type HostError struct {
	Host string
	Err  error
}

func (e *HostError) Error() string {
	msg := e.Err.Error()
	if len(msg) >= len(e.Host) && msg[:len(e.Host)] == e.Host {
		return msg
	}
	return e.Host + ": " + msg
}

func (e *HostError) Unwrap() error { return e.Err }
