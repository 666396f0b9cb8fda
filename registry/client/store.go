package client

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Store is the part of the local image store (package store) that push and pull use.
type Store interface {
	// Resolve returns the descriptor that ref names in the store.
	Resolve(ctx context.Context, ref string) (v1.Descriptor, error)
	// Image returns ref's image; for an index, the child for the host platform.
	Image(ctx context.Context, ref string) (v1.Image, error)
	// ImageIndex returns ref's index.
	ImageIndex(ctx context.Context, ref string) (v1.ImageIndex, error)
	// WriteImage stores img (its blobs as they are) and names it ref.
	WriteImage(ctx context.Context, ref string, img v1.Image) error
	// WriteIndex stores idx with all its children and names it ref.
	WriteIndex(ctx context.Context, ref string, idx v1.ImageIndex) error
}

// Policy says when Pull contacts the registry.
type Policy string

const (
	// PolicyAlways asks the registry every time; an unchanged image is not written again.
	PolicyAlways Policy = "always"
	// PolicyMissing pulls only if the store has no image of that name.
	PolicyMissing Policy = "missing"
	// PolicyNever never pulls: the image must be in the store already.
	PolicyNever Policy = "never"
)

// ParsePolicy checks a --policy value.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyAlways, PolicyMissing, PolicyNever:
		return p, nil
	}
	return "", fmt.Errorf("unknown pull policy %q: use always, missing or never", s)
}

// Pull status values.
const (
	StatusPulled   = "pulled"     // written to the store
	StatusUpToDate = "up to date" // the store already had exactly this manifest
	StatusPresent  = "present"    // not asked for: the policy accepted the store's copy
)

// PullResult says what Pull did for one reference.
type PullResult struct {
	Ref       string `json:"ref"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	Status    string `json:"status"`
}

// ErrNotInStore is returned by Pull with PolicyNever when the store lacks the image.
var ErrNotInStore = errors.New("image not in the local store")

// Pull copies ref from its registry into st under the name ref. For an index, all=true
// stores the whole index (every platform); otherwise only the image for WithPlatform's
// platform (default: the host) is stored.
func Pull(ctx context.Context, st Store, ref string, all bool, policy Policy, opts ...Option) (PullResult, error) {
	res := PullResult{Ref: ref}
	if policy == "" {
		policy = PolicyAlways
	}
	local, lerr := st.Resolve(ctx, ref)
	switch policy {
	case PolicyNever, PolicyMissing:
		if lerr == nil {
			res.Digest, res.MediaType, res.Status = local.Digest.String(), string(local.MediaType), StatusPresent
			return res, nil
		}
		if policy == PolicyNever {
			return res, fmt.Errorf("pull %s: %w (policy %q): %v", ref, ErrNotInStore, policy, lerr)
		}
	case PolicyAlways:
	default:
		return res, fmt.Errorf("pull %s: unknown policy %q", ref, policy)
	}

	o := makeOptions(opts...)
	desc, err := Get(ctx, ref, opts...)
	if err != nil {
		return res, err
	}
	if desc.MediaType.IsIndex() && all {
		res.Digest, res.MediaType = desc.Digest.String(), string(desc.MediaType)
		if lerr == nil && local.Digest == desc.Digest {
			res.Status = StatusUpToDate
			return res, nil
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return res, fmt.Errorf("pull %s: %w", ref, err)
		}
		if err := st.WriteIndex(ctx, ref, &progressIndex{index: idx, w: &wrapper{p: o.progress, action: "pull"}}); err != nil {
			return res, fmt.Errorf("pull %s: store: %w", ref, err)
		}
		res.Status = StatusPulled
		return res, nil
	}
	img, err := desc.Image() // resolves an index to the platform's child
	if err != nil {
		return res, fmt.Errorf("pull %s: %w", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		return res, fmt.Errorf("pull %s: %w", ref, err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return res, fmt.Errorf("pull %s: %w", ref, err)
	}
	res.Digest, res.MediaType = h.String(), string(mt)
	if lerr == nil && local.Digest == h {
		res.Status = StatusUpToDate
		return res, nil
	}
	if err := st.WriteImage(ctx, ref, wrapPulled(img, o)); err != nil {
		return res, fmt.Errorf("pull %s: store: %w", ref, err)
	}
	res.Status = StatusPulled
	return res, nil
}

// PushFromStore pushes the image or index that src names in st to dst (src when empty).
func PushFromStore(ctx context.Context, st Store, src, dst string, opts ...Option) (v1.Descriptor, error) {
	if dst == "" {
		dst = src
	}
	desc, err := st.Resolve(ctx, src)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("push %s: %w", src, err)
	}
	var p Pushable
	if desc.MediaType.IsIndex() {
		p, err = st.ImageIndex(ctx, src)
	} else {
		p, err = st.Image(ctx, src)
	}
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("push %s: %w", src, err)
	}
	return Push(ctx, p, dst, opts...)
}
