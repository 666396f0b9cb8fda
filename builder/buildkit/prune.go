package buildkit

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/buildkit/client"
)

// PruneOptions choose what Prune removes from the build cache, as `docker builder prune`
// does: unused records not used within KeepDuration (0: any age), keeping at most
// KeepStorage bytes of cache (0: none kept). All includes what BuildKit otherwise keeps
// (internal and frontend records, and records shared with others).
type PruneOptions struct {
	All          bool
	KeepDuration time.Duration
	KeepStorage  int64
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Records int   `json:"records"`
	Bytes   int64 `json:"bytes"`
}

// Prune removes unused build cache. Records in use by a running build are never removed.
func (e *Engine) Prune(ctx context.Context, opt PruneOptions) (PruneReport, error) {
	var rep PruneReport
	ch := make(chan client.UsageInfo)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range ch {
			rep.Records++
			rep.Bytes += u.Size
		}
	}()
	opts := []client.PruneOption{client.WithKeepOpt(opt.KeepDuration, opt.KeepStorage, 0, 0)}
	if opt.All {
		opts = append(opts, client.PruneAll)
	}
	err := e.Client.Prune(ctx, ch, opts...)
	close(ch)
	<-done
	if err != nil {
		return rep, fmt.Errorf("prune build cache: %w", err)
	}
	return rep, nil
}
