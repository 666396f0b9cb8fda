package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Files in a filesystem hub's storage root that fence writes against garbage collection
// across processes: a hub holds a shared flock on lockFile while any write request runs,
// a collector holds it exclusively while it marks and sweeps, and bumps genFile when done
// so running hubs drop their blob descriptor caches.
const (
	lockFile = ".sealos-gc.lock"
	genFile  = ".sealos-gc.gen"
)

type writeGate struct {
	root string
	mu   sync.Mutex
	n    int
	f    *os.File
}

func openWriteGate(root string) (*writeGate, error) {
	f, err := os.OpenFile(filepath.Join(root, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open gc lock: %w", err)
	}
	return &writeGate{root: root, f: f}, nil
}

// enter waits until no collection runs and registers a write in flight.
func (g *writeGate) enter(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == 0 {
		if err := flockWait(ctx, g.f, syscall.LOCK_SH); err != nil {
			return err
		}
	}
	g.n++
	return nil
}

func (g *writeGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 {
		_ = syscall.Flock(int(g.f.Fd()), syscall.LOCK_UN)
	}
}

func (g *writeGate) close() error { return g.f.Close() }

// generation is the content of the generation file ("" if none).
func (g *writeGate) generation() string {
	b, err := os.ReadFile(filepath.Join(g.root, genFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// flockWait takes a flock, polling so that ctx can cancel the wait.
func flockWait(ctx context.Context, f *os.File, how int) error {
	delay := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("flock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for garbage collection to finish: %w", ctx.Err())
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// gcLock fences a garbage collection of root against every hub serving it.
type gcLock struct{ f *os.File }

func lockForGC(ctx context.Context, root string) (*gcLock, error) {
	f, err := os.OpenFile(filepath.Join(root, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open gc lock: %w", err)
	}
	if err := flockWait(ctx, f, syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return &gcLock{f: f}, nil
}

// unlock bumps the generation (so hubs drop caches) and releases the lock.
func (l *gcLock) unlock(root string, changed bool) error {
	var err error
	if changed {
		tmp := filepath.Join(root, genFile+".tmp")
		err = os.WriteFile(tmp, []byte(fmt.Sprintf("%d\n", time.Now().UnixNano())), 0o644)
		if err == nil {
			err = os.Rename(tmp, filepath.Join(root, genFile))
		}
	}
	return errors.Join(err, l.f.Close())
}
