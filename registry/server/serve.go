package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ServeOptions tune Serve.
type ServeOptions struct {
	// TLSCert and TLSKey (PEM files) serve HTTPS; both or neither.
	TLSCert, TLSKey string
	// ShutdownTimeout is how long requests in flight may take to finish once ctx is done;
	// then their connections are closed (an upload cut short never becomes visible).
	// Default 30s.
	ShutdownTimeout time.Duration
	// Limits on connections, bodies and uploads; the zero value is the defaults.
	Limits
}

// Serve serves the hub on ln until ctx is done, then shuts down gracefully: it stops
// accepting, lets requests in flight finish for up to ShutdownTimeout, and closes the
// rest. It returns nil after a shutdown ctx asked for.
func (s *Server) Serve(ctx context.Context, ln net.Listener, opts ServeOptions) error {
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return errors.New("serve: TLS needs both a certificate and a key")
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	l := opts.Limits.withDefaults()
	cl := newConnLimiter(ln, l)
	ln = cl
	hs := &http.Server{
		Handler:           s.guard(http.HandlerFunc(s.serveHTTP), l),
		ReadHeaderTimeout: max(l.ReadHeaderTimeout, 0),
		IdleTimeout:       max(l.IdleTimeout, 0),
		MaxHeaderBytes:    max(l.MaxHeaderBytes, 0),
		ConnState:         cl.connState,
	}
	errc := make(chan error, 1)
	go func() {
		if opts.TLSCert != "" {
			errc <- hs.ServeTLS(ln, opts.TLSCert, opts.TLSKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		_ = hs.Close()
		err = fmt.Errorf("shutdown: requests still running after %s were cut: %w", opts.ShutdownTimeout, err)
	}
	<-errc // http.ErrServerClosed
	return err
}
