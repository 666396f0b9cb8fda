package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
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
// platform (default: the host) is stored. Manifests and blobs are stored byte for byte,
// blobs fetched in parallel (WithJobs), each verified against its digest as the store
// writes it; blobs the store has are not fetched.
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
	r, err := name.ParseReference(ref, o.nameOptions()...)
	if err != nil {
		return res, fmt.Errorf("pull %q: %w", ref, err)
	}
	if err := pull(ctx, st, ref, r, all, o, local, lerr == nil, &res); err != nil {
		return res, fmt.Errorf("pull %s: %w", ref, err)
	}
	return res, nil
}

func pull(ctx context.Context, st *store.Store, ref string, r name.Reference, all bool, o *options, local v1.Descriptor, haveLocal bool, res *PullResult) error {
	start := time.Now()
	repo := r.Context().RepositoryStr()
	w, err := newWire(ctx, r.Context().Registry, o, repoScopes(r.Context(), false, nil))
	if err != nil {
		return err
	}
	slog.Debug("pull: connected", "registry", r.Context().RegistryStr(), "elapsed", time.Since(start))
	m, err := w.mustGetManifest(ctx, repo, r.Identifier())
	if err != nil {
		return err
	}
	raw, desc := m.raw, m.descriptor()
	slog.Debug("pull: manifest", "digest", desc.Digest, "mediaType", desc.MediaType, "elapsed", time.Since(start))
	if desc.MediaType.IsIndex() && !all {
		child, err := pickPlatform(raw, o)
		if err != nil {
			return err
		}
		if m, err = w.mustGetManifest(ctx, repo, child.Digest.String()); err != nil {
			return err
		}
		raw, desc = m.raw, m.descriptor()
	}
	res.Digest, res.MediaType = desc.Digest.String(), string(desc.MediaType)
	if haveLocal && local.Digest == desc.Digest {
		res.Status = StatusUpToDate
		return nil
	}
	release, err := st.Lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	f := &fetcher{w: w, repo: repo, st: st, o: o, seen: map[v1.Hash]bool{}}
	if desc.MediaType.IsIndex() {
		if err := f.addIndex(ctx, raw, desc, 0); err != nil {
			return err
		}
	} else if err := f.addImage(raw, desc); err != nil {
		return err
	}
	if err := f.run(ctx); err != nil {
		return err
	}
	slog.Debug("pull: blobs stored", "blobs", len(f.blobs), "elapsed", time.Since(start))
	defer func() { slog.Debug("pull: done", "elapsed", time.Since(start)) }()
	if desc.MediaType.IsIndex() {
		idx, err := openIndex(st, raw, desc)
		if err != nil {
			return err
		}
		if err := st.WriteIndex(ctx, ref, idx); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	} else {
		img, err := st.ImageByDigest(desc.Digest)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if err := st.WriteImage(ctx, ref, img); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	res.Status = StatusPulled
	return nil
}

// pickPlatform chooses the image of an index for WithPlatform (default: the host). An
// index holding a single image (attestations aside) gives that image whatever its platform.
func pickPlatform(raw []byte, o *options) (v1.Descriptor, error) {
	m, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, err
	}
	want := HostPlatform()
	if o.platform != nil {
		want = *o.platform
	}
	var images []v1.Descriptor
	var have []string
	for _, d := range m.Manifests {
		if !d.MediaType.IsImage() || d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue
		}
		images = append(images, d)
		if d.Platform != nil {
			if d.Platform.Satisfies(want) {
				return d, nil
			}
			have = append(have, d.Platform.String())
		}
	}
	if len(images) == 1 && o.platform == nil {
		return images[0], nil
	}
	return v1.Descriptor{}, fmt.Errorf("no image for platform %s in the index (it has: %s); choose one with --platform or take all with --all", want.String(), strings.Join(have, ", "))
}

// fetcher copies blobs and manifests from a registry into the store.
type fetcher struct {
	w     *wire
	repo  string
	st    *store.Store
	o     *options
	seen  map[v1.Hash]bool
	blobs []v1.Descriptor
	// manifests are stored after every blob they refer to.
	manifests []storedManifest
}

type storedManifest struct {
	raw  []byte
	desc v1.Descriptor
}

func (f *fetcher) addBlob(d v1.Descriptor) {
	if f.seen[d.Digest] {
		return
	}
	f.seen[d.Digest] = true
	f.blobs = append(f.blobs, d)
}

func (f *fetcher) addImage(raw []byte, desc v1.Descriptor) error {
	if desc.MediaType == types.DockerManifestSchema1 || desc.MediaType == types.DockerManifestSchema1Signed {
		return fmt.Errorf("%s is a docker schema 1 manifest, which is not supported", desc.Digest)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	if err := validSizes(desc, append([]v1.Descriptor{m.Config}, m.Layers...)); err != nil {
		return err
	}
	f.addBlob(m.Config)
	for _, l := range m.Layers {
		if !l.MediaType.IsDistributable() && len(l.URLs) > 0 {
			continue // foreign layer: it lives at its URLs, not in the registry
		}
		f.addBlob(l)
	}
	f.manifests = append(f.manifests, storedManifest{raw: raw, desc: desc})
	return nil
}

// validSizes refuses a manifest with a negative descriptor size: a blob's size is checked
// as it is written only when it is not negative, and such a manifest would be stored as
// is, for every registry it is pushed to later to refuse.
func validSizes(m v1.Descriptor, descs []v1.Descriptor) error {
	for _, d := range descs {
		if d.Size < 0 {
			return fmt.Errorf("manifest %s: descriptor %s has a negative size (%d)", m.Digest, d.Digest, d.Size)
		}
	}
	return nil
}

func (f *fetcher) addIndex(ctx context.Context, raw []byte, desc v1.Descriptor, depth int) error {
	if depth > 8 {
		return fmt.Errorf("index nesting deeper than 8")
	}
	m, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("index %s: %w", desc.Digest, err)
	}
	if err := validSizes(desc, m.Manifests); err != nil {
		return err
	}
	for _, d := range m.Manifests {
		if f.seen[d.Digest] {
			continue
		}
		f.seen[d.Digest] = true
		cm, err := f.w.mustGetManifest(ctx, f.repo, d.Digest.String())
		if err != nil {
			return err
		}
		craw, cdesc := cm.raw, cm.descriptor()
		switch {
		case cdesc.MediaType.IsIndex():
			err = f.addIndex(ctx, craw, cdesc, depth+1)
		case cdesc.MediaType.IsImage():
			err = f.addImage(craw, cdesc)
		default:
			f.manifests = append(f.manifests, storedManifest{raw: craw, desc: cdesc})
		}
		if err != nil {
			return err
		}
	}
	f.manifests = append(f.manifests, storedManifest{raw: raw, desc: desc})
	return nil
}

// run fetches the blobs the store lacks, o.jobs at a time, then stores the manifests.
//
// Blobs are announced to the store's write-back journal first (store.DeferSync), so it
// does not wait for the disk blob by blob: with an fsync each, 64 x 1 MiB took ~140 ms of
// disk waits here, without ~60 ms (a third of it hashing).
func (f *fetcher) run(ctx context.Context) error {
	var deferred []v1.Hash
	for _, b := range f.blobs {
		f.o.progress.expect("pull", b.Digest, b.Size)
		deferred = append(deferred, b.Digest)
	}
	for _, m := range f.manifests {
		deferred = append(deferred, m.desc.Digest)
	}
	// not waiting for the disk blob by blob is most of a pull's speed; if the journal
	// cannot be written, every blob is fsynced instead
	if err := f.st.DeferSync(deferred); err != nil {
		slog.Debug("pull: blobs will be fsynced one by one", "error", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.o.jobs)
	for _, b := range f.blobs {
		if f.st.HasBlob(b.Digest) {
			f.o.progress.done(b.Digest, blobExisted)
			continue
		}
		g.Go(func() error {
			err := f.o.retry(gctx, func() error {
				rc, err := f.w.getBlob(gctx, f.repo, b.Digest)
				if err != nil {
					return err
				}
				defer rc.Close()
				var body io.Reader = rc
				if f.o.progress.counting() {
					body = f.o.progress.reader(b.Digest, rc)
				}
				_, _, err = f.st.WriteBlob(gctx, b.Digest, b.Size, body)
				return err
			})
			if err != nil {
				return fmt.Errorf("blob %s: %w", b.Digest, err)
			}
			f.o.progress.done(b.Digest, "pulled")
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, m := range f.manifests {
		if _, _, err := f.st.WriteBlob(ctx, m.desc.Digest, m.desc.Size, bytes.NewReader(m.raw)); err != nil {
			return fmt.Errorf("manifest %s: %w", m.desc.Digest, err)
		}
	}
	return nil
}

// storedIndex is an index whose children are all in the store already.
type storedIndex struct {
	st   *store.Store
	raw  []byte
	desc v1.Descriptor
	m    *v1.IndexManifest
}

func openIndex(st *store.Store, raw []byte, desc v1.Descriptor) (*storedIndex, error) {
	m, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return &storedIndex{st: st, raw: raw, desc: desc, m: m}, nil
}

func (x *storedIndex) MediaType() (types.MediaType, error)       { return x.desc.MediaType, nil }
func (x *storedIndex) Digest() (v1.Hash, error)                  { return x.desc.Digest, nil }
func (x *storedIndex) Size() (int64, error)                      { return x.desc.Size, nil }
func (x *storedIndex) RawManifest() ([]byte, error)              { return x.raw, nil }
func (x *storedIndex) IndexManifest() (*v1.IndexManifest, error) { return x.m.DeepCopy(), nil }
func (x *storedIndex) Image(h v1.Hash) (v1.Image, error)         { return x.st.ImageByDigest(h) }
func (x *storedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	raw, err := os.ReadFile(filepath.Join(x.st.Dir(), "blobs", h.Algorithm, h.Hex))
	if err != nil {
		return nil, err
	}
	d := v1.Descriptor{Digest: h, Size: int64(len(raw)), MediaType: manifestMediaType(raw, "")}
	for _, c := range x.m.Manifests {
		if c.Digest == h {
			d.MediaType = c.MediaType
		}
	}
	return openIndex(x.st, raw, d)
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
