package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// healthPath answers load balancers and orchestrators without a login: 200 "ok" when the
// hub's storage answers within healthTimeout, 503 with the reason when it does not (a
// replica whose bucket is unreachable is taken out of rotation), 503 "stopping" once the
// hub shuts down.
const (
	healthPath    = "/healthz"
	healthTimeout = 3 * time.Second
)

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.checkStorage(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	fmt.Fprintln(w, "ok")
}

// checkStorage asks the storage for the registry's root: any answer, "not found" (nothing
// stored yet) included, means it is reachable.
func (s *Server) checkStorage(ctx context.Context) error {
	if s.baseCtx.Err() != nil {
		return errors.New("stopping")
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	_, err := s.driver.Stat(ctx, "/docker/registry/v2")
	var nf storagedriver.PathNotFoundError
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}
