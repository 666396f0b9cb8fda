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
//
// A collector first takes intentFile exclusively: new writes wait while it is held, so
// the collector gets its turn as soon as the writes in flight finish, however busy the
// hub is.
const (
	lockFile   = ".sealos-gc.lock"
	intentFile = ".sealos-gc.intent"
	genFile    = ".sealos-gc.gen"
)

type writeGate struct {
	root   string
	mu     sync.Mutex
	n      int
	f      *os.File
	intent *os.File
}

func openWriteGate(root string) (*writeGate, error) {
	f, err := os.OpenFile(filepath.Join(root, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open gc lock: %w", err)
	}
	intent, err := os.OpenFile(filepath.Join(root, intentFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open gc lock: %w", err)
	}
	return &writeGate{root: root, f: f, intent: intent}, nil
}

// waitNoIntent waits while a collector has announced itself.
func (g *writeGate) waitNoIntent(ctx context.Context) error {
	// a probe: take and drop a shared lock (other goroutines probing the same file
	// description at once can only make the probe pessimistic, never wrong for long)
	if err := flockWait(ctx, g.intent, syscall.LOCK_SH); err != nil {
		return err
	}
	return syscall.Flock(int(g.intent.Fd()), syscall.LOCK_UN)
}

// enter waits until no collection runs or waits to run, and registers a write in flight.
func (g *writeGate) enter(ctx context.Context) error {
	if err := g.waitNoIntent(ctx); err != nil {
		return err
	}
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

func (g *writeGate) close() error { return errors.Join(g.f.Close(), g.intent.Close()) }

// readGeneration is the content of the generation file of root ("" if none).
func readGeneration(root string) string {
	b, err := os.ReadFile(filepath.Join(root, genFile))
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
		if delay < maxFlockPoll {
			delay *= 2
		}
	}
}

// gcLock fences a garbage collection of root against every hub serving it.
type gcLock struct{ f, intent *os.File }

func lockForGC(ctx context.Context, root string) (*gcLock, error) {
	intent, err := os.OpenFile(filepath.Join(root, intentFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open gc lock: %w", err)
	}
	if err := flockWait(ctx, intent, syscall.LOCK_EX); err != nil { // new writes now wait
		intent.Close()
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(root, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		intent.Close()
		return nil, fmt.Errorf("open gc lock: %w", err)
	}
	if err := flockWait(ctx, f, syscall.LOCK_EX); err != nil { // writes in flight are done
		f.Close()
		intent.Close()
		return nil, err
	}
	return &gcLock{f: f, intent: intent}, nil
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
	return errors.Join(err, l.f.Close(), l.intent.Close())
}

// maxFlockPoll is the longest a wait for a gate flock sleeps between tries. Short, as a
// write released by a collection that wakes late leaves less of the time until the
// next collection for the rest of its push (with collections every 100 ms and a keep
// window of 0, a push whose requests each woke up to 50 ms late never completed).
const maxFlockPoll = 4 * time.Millisecond
