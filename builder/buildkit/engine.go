package buildkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/moby/buildkit/client"
)

// EnvHost names a remote buildkitd when no address is given, as BuildKit's own tools do.
const EnvHost = "BUILDKIT_HOST"

// Engine is a connection to BuildKit: the embedded controller or a remote daemon.
type Engine struct {
	// Client talks to the engine; valid until Close.
	Client *client.Client
	daemon *Daemon
	addr   string
}

// Connect returns an engine. With addr (or $BUILDKIT_HOST when addr is empty) it dials
// that daemon; otherwise it starts the embedded controller with opt (state in opt.Root).
// wait, if not nil, is told when the embedded controller waits for another process.
func Connect(ctx context.Context, addr string, opt DaemonOptions, wait func(string)) (*Engine, error) {
	if addr == "" {
		addr = os.Getenv(EnvHost)
	}
	if addr != "" {
		if !strings.Contains(addr, "://") {
			return nil, fmt.Errorf("buildkit address %q has no scheme: use unix:///path, tcp://host:port, ...", addr)
		}
		c, err := client.New(ctx, addr)
		if err != nil {
			return nil, fmt.Errorf("connect to buildkitd at %s: %w", addr, err)
		}
		if _, err := c.Info(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("connect to buildkitd at %s: %w", addr, err)
		}
		return &Engine{Client: c, addr: addr}, nil
	}
	d, err := StartDaemon(ctx, opt, wait)
	if err != nil {
		return nil, err
	}
	c, err := d.Client(ctx)
	if err != nil {
		d.Close()
		return nil, err
	}
	return &Engine{Client: c, daemon: d, addr: d.Addr()}, nil
}

// Remote tells whether the engine is a daemon outside this process.
func (e *Engine) Remote() bool { return e.daemon == nil }

// Addr is the engine's gRPC address.
func (e *Engine) Addr() string { return e.addr }

// Close disconnects and, for the embedded controller, stops it.
func (e *Engine) Close() error {
	var errs []error
	if e.Client != nil {
		errs = append(errs, e.Client.Close())
	}
	if e.daemon != nil {
		errs = append(errs, e.daemon.Close())
	}
	return errors.Join(errs...)
}
