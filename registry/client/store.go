package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cluster-image/sealos/store"
)

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

// Pull copies ref from its registry into st under the name ref. For an index, all=true
// stores the whole index (every platform); otherwise only the image for WithPlatform's
// platform (default: the host) is stored.
func Pull(ctx context.Context, st *store.Store, ref string, all bool, policy Policy, opts ...Option) (PullResult, error) {
	res := PullResult{Ref: ref}
	if policy == "" {
		policy = PolicyAlways
	}
	local, lerr := st.Resolve(ctx, ref)
	if lerr != nil && !errors.Is(lerr, store.ErrNotFound) {
		return res, fmt.Errorf("pull %s: %w", ref, lerr)
	}
	switch policy {
	case PolicyNever, PolicyMissing:
		if lerr == nil {
			res.Digest, res.MediaType, res.Status = local.Digest.String(), string(local.MediaType), StatusPresent
			return res, nil
		}
		if policy == PolicyNever {
			return res, fmt.Errorf("pull %s with policy %q: %w", ref, policy, lerr)
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
		release, err := st.Lease(ctx)
		if err != nil {
			return res, err
		}
		defer release()
		if err := prefetchIndex(ctx, st, idx, o, 0); err != nil {
			return res, fmt.Errorf("pull %s: %w", ref, err)
		}
		if err := st.WriteIndex(ctx, ref, idx); err != nil {
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
	release, err := st.Lease(ctx)
	if err != nil {
		return res, err
	}
	defer release()
	if err := prefetch(ctx, st, []v1.Image{img}, o); err != nil {
		return res, fmt.Errorf("pull %s: %w", ref, err)
	}
	if err := st.WriteImage(ctx, ref, img); err != nil {
		return res, fmt.Errorf("pull %s: store: %w", ref, err)
	}
	res.Status = StatusPulled
	return res, nil
}

// PushFromStore pushes the image or index that src names in st to dst (src when empty).
func PushFromStore(ctx context.Context, st *store.Store, src, dst string, opts ...Option) (v1.Descriptor, error) {
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

// prefetch copies the layers of imgs that the store lacks, o.jobs at a time, so that the
// store's WriteImage/WriteIndex that follows finds them present and only writes the small
// config and manifest blobs. Hold a store lease around prefetch and the write.
func prefetch(ctx context.Context, st *store.Store, imgs []v1.Image, o *options) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.jobs)
	seen := map[v1.Hash]bool{}
	for _, img := range imgs {
		ls, err := img.Layers()
		if err != nil {
			return err
		}
		for _, l := range ls {
			h, err := l.Digest()
			if err != nil {
				return err
			}
			size, err := l.Size()
			if err != nil {
				return err
			}
			if mt, err := l.MediaType(); err == nil && !mt.IsDistributable() {
				continue // foreign layers: the store decides
			}
			if seen[h] {
				continue
			}
			seen[h] = true
			o.progress.expect("pull", h, size)
			if st.HasBlob(h) {
				continue
			}
			g.Go(func() error {
				rc, err := l.Compressed()
				if err != nil {
					return fmt.Errorf("layer %s: %w", h, err)
				}
				defer rc.Close()
				if _, _, err := st.WriteBlob(gctx, h, size, o.progress.reader(h, rc)); err != nil {
					return fmt.Errorf("layer %s: %w", h, err)
				}
				return nil
			})
		}
	}
	return g.Wait()
}

// prefetchIndex prefetches the layers of every image under idx.
func prefetchIndex(ctx context.Context, st *store.Store, idx v1.ImageIndex, o *options, depth int) error {
	if depth > 8 {
		return fmt.Errorf("index nesting deeper than 8")
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	var imgs []v1.Image
	for _, d := range m.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return err
			}
			if err := prefetchIndex(ctx, st, child, o, depth+1); err != nil {
				return err
			}
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return err
			}
			imgs = append(imgs, img)
		}
	}
	return prefetch(ctx, st, imgs, o)
}

// MountSources finds, for WithMountFrom, blobs of images that the store holds under other
// repositories of dst's registry: a push to dst can mount those instead of uploading them,
// if the registry still has them (otherwise it falls back to an upload).
func MountSources(ctx context.Context, st *store.Store, dst name.Reference) (map[v1.Hash]name.Reference, error) {
	entries, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	out := map[v1.Hash]name.Reference{}
	for _, e := range entries {
		if e.Name == "" {
			continue
		}
		r, err := name.ParseReference(e.Name, name.WeakValidation)
		if err != nil || r.Context().Registry.RegistryStr() != dst.Context().Registry.RegistryStr() || r.Context().RepositoryStr() == dst.Context().RepositoryStr() {
			continue
		}
		src := dst.Context().Registry.Repo(r.Context().RepositoryStr()).Tag("latest")
		var imgs []v1.Image
		if e.Index {
			idx, err := st.ImageIndex(ctx, e.Name)
			if err != nil {
				continue
			}
			m, err := idx.IndexManifest()
			if err != nil {
				continue
			}
			for _, d := range m.Manifests {
				if img, err := idx.Image(d.Digest); err == nil && d.MediaType.IsImage() {
					imgs = append(imgs, img)
				}
			}
		} else if img, err := st.Image(ctx, e.Name); err == nil {
			imgs = append(imgs, img)
		}
		for _, img := range imgs {
			ls, err := img.Layers()
			if err != nil {
				continue
			}
			for _, l := range ls {
				if h, err := l.Digest(); err == nil {
					if _, ok := out[h]; !ok {
						out[h] = src
					}
				}
			}
		}
	}
	return out, nil
}
