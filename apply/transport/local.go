package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Local runs commands on this machine with /bin/sh, as the current user.
type Local struct{ host string }

// NewLocal returns a Transport for this machine; host is only used in messages.
func NewLocal(host string) *Local {
	if host == "" {
		host = "localhost"
	}
	return &Local{host: host}
}

func (l *Local) Host() string { return l.host }

func (l *Local) Run(ctx context.Context, cmd string, opts RunOptions) error {
	ctx, cancel := timeoutCtx(ctx, opts.Timeout)
	defer cancel()
	t := newTail(4096)
	c := exec.Command("/bin/sh", "-c", withEnv(opts.Env, cmd))
	c.Stdin = opts.Stdin
	c.Stdout = writers(opts.Stdout, t)
	c.Stderr = writers(opts.Stderr, t)
	// Its own process group, so a timeout kills the whole command, not only the shell.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.WaitDelay = 2 * time.Second
	if err := c.Start(); err != nil {
		return fmt.Errorf("%s: start %q: %w", l.host, cmd, err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err := c.Wait()
	close(done)
	if ctx.Err() != nil {
		return ctxErr(l.host, cmd, ctx)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Host: l.host, Cmd: cmd, Code: ee.ExitCode(), Tail: t.String()}
	}
	if err != nil {
		return fmt.Errorf("%s: %q: %w", l.host, cmd, err)
	}
	return nil
}

func (l *Local) Copy(ctx context.Context, r io.Reader, path string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("%s: copy to %s: %w", l.host, path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("%s: copy to %s: %w", l.host, path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = io.Copy(f, readerCtx{ctx, r})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, mode.Perm())
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("%s: copy to %s: %w", l.host, path, err)
	}
	return nil
}

func (l *Local) Close() error { return nil }

// readerCtx stops a copy when ctx is done.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
