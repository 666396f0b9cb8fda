package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// IsStorageDir says whether dir looks like a hub's storage root (it holds
// docker/registry/v2), e.g. the registry/ directory of a cluster image.
func IsStorageDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "docker", "registry", "v2"))
	return err == nil && st.IsDir()
}

// ServeLoopback serves a hub built from cfg on 127.0.0.1 (a free port) until stop is
// called, and returns its host:port. It lets registry clients read a storage directory
// (such as a cluster image's registry/) as if it were a registry.
func ServeLoopback(cfg Config) (addr string, stop func() error, err error) {
	srv, err := New(cfg)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return "", nil, fmt.Errorf("registry server: listen: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	stop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := hs.Shutdown(ctx)
		if e := <-done; !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, e)
		}
		return errors.Join(err, srv.Close())
	}
	return ln.Addr().String(), stop, nil
}
