package buildkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
)

// linkingStore is the image store's content store as the export sees it. When the engine
// runs in this process, every blob the export sends already sits in the engine's own
// content store, normally on the same filesystem: such a blob is hard-linked into the image
// store instead of being streamed through the session (which reads, frames, copies and
// re-hashes every byte). Anything that cannot be linked goes the normal way.
type linkingStore struct {
	content.Store
	dir       string // the image store (an OCI layout)
	engineDir string // the engine's content store root ("" for a remote engine)
	// The export calls Writer from several goroutines at once.
	linked     atomic.Int64
	linkedSize atomic.Int64
}

func (s *linkingStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	if d := wo.Desc.Digest; s.engineDir != "" && d.Validate() == nil {
		rel := filepath.Join("blobs", d.Algorithm().String(), d.Encoded())
		dst := filepath.Join(s.dir, rel)
		if _, err := os.Stat(dst); err == nil {
			return nil, fmt.Errorf("content %s: %w", d, errdefs.ErrAlreadyExists)
		}
		src := filepath.Join(s.engineDir, rel)
		if fi, err := os.Stat(src); err == nil && (wo.Desc.Size <= 0 || fi.Size() == wo.Desc.Size) {
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
				err := os.Link(src, dst)
				if err == nil || errors.Is(err, os.ErrExist) {
					s.linked.Add(1)
					s.linkedSize.Add(fi.Size())
					return nil, fmt.Errorf("content %s: %w", d, errdefs.ErrAlreadyExists)
				}
			}
		}
	}
	return s.Store.Writer(ctx, opts...)
}
