package server

// Mirror mode: the hub answers pulls meant for other registries (docker.io, quay.io, ...)
// from its own storage, fetches what it lacks from that registry's upstream once, keeps it,
// and goes on serving it when the upstream is gone. Pushes of the site's own images work as
// on any hub.
//
// Which registry a pull is for:
//
//   - containerd (hosts.toml mirrors) adds ?ns=<registry> to every request it sends to a
//     mirror: GET /v2/library/nginx/manifests/1.27?ns=docker.io.
//   - path prefix, for clients that cannot send ns (podman, skopeo and buildah with a
//     registries.conf mirror location "hub:5000/docker.io"):
//     GET /v2/docker.io/library/nginx/manifests/1.27. The first path element must be the
//     Namespace of a registry configured with Config.Mirrors.
//
// Where content lives: the mirror namespace of registry N for repository R is the hub's
// repository "N/R" (docker.io/library/nginx; a port's colon becomes "_", see Namespace),
// distinct from the site's own "R" (library/nginx, e.g. pushed by the site or loaded from
// a cluster image's registry/). So a
// cached upstream image never collides with a local push of the same name, and content can
// also be put into the mirror namespace ahead of time (`sealos registry sync SRC
// hub:5000/docker.io`).
//
// A pull for N/R is answered from, in order:
//  1. the mirror namespace "N/R" (a cached tag older than Config.MirrorTTL is re-checked
//     upstream first, once per TTL; if the upstream cannot be reached the cached one is
//     served; MirrorTTL 0 keeps cached tags forever and never asks upstream again);
//  2. the site's own repository "R" (content delivered to the site wins over the internet,
//     as with sealos' registry/ directories);
//  3. N's upstream, if one is configured: the manifest or blob is fetched, verified against
//     its digest and written into "N/R" (the same distribution storage, so it persists and
//     is garbage collected like any other). A blob streams to the client that asked for it
//     while it is stored; concurrent requests for the same tag or digest wait for that one
//     upstream fetch (singleflight). The blobs of a manifest fetched from upstream are
//     fetched in the background too, so what the hub resolved is complete offline.
//
// A blob or manifest already in the hub's blob store under any repository is linked into
// "N/R" without an upstream request. Requests for registries without an upstream follow
// steps 1 and 2 only. After a network failure an upstream is not contacted again for
// upstreamBackoff, so an unreachable upstream costs one failed connection, not one per pull.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"
)

// Mirror is an upstream registry the hub mirrors.
type Mirror struct {
	// Registry is the name clients pull by, e.g. "docker.io" (what containerd sends as ns).
	Registry string
	// URL is where the upstream answers, e.g. "https://registry-1.docker.io". Empty: no
	// upstream; the hub serves what it holds for Registry and nothing else.
	URL string
}

// ParseMirror parses REGISTRY=URL (or REGISTRY alone, for a namespace without upstream).
func ParseMirror(s string) (Mirror, error) {
	reg, u, _ := strings.Cut(s, "=")
	reg = strings.TrimSpace(reg)
	if reg == "" || strings.ContainsAny(reg, "/ ") {
		return Mirror{}, fmt.Errorf("mirror %q: want REGISTRY=URL, e.g. docker.io=https://registry-1.docker.io", s)
	}
	if u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return Mirror{}, fmt.Errorf("mirror %q: upstream %q is not an http(s) URL", s, u)
		}
	}
	return Mirror{Registry: reg, URL: strings.TrimSuffix(u, "/")}, nil
}

const (
	mirrorRoot      = "/sealos/v1/mirror" // <repo>/<tag>: when the tag was last checked upstream
	upstreamBackoff = 10 * time.Second
)

type mirror struct {
	s           *Server
	ttl         time.Duration
	upstreams   map[string]*upstream // by registry name; nil value: namespace without upstream
	namespaces  map[string]string    // Namespace(registry) -> registry, for path prefixes
	flight      singleflight.Group   // manifest fetches
	mu          sync.Mutex           // guards fetching
	fetching    map[digest.Digest]*blobFetch
	prefetchSem chan struct{}
	wg          sync.WaitGroup // background prefetches
}

// Namespace is the first path element of registry's mirror namespace in the hub: the
// registry name, with the colon of a port as "_" (myreg:5000 -> myreg_5000), since
// repository names cannot hold a colon.
func Namespace(registry string) string {
	return strings.ToLower(strings.ReplaceAll(registry, ":", "_"))
}

type upstream struct {
	name  string
	reg   name.Registry
	base  http.RoundTripper
	mu    sync.Mutex
	rt    http.RoundTripper // authenticated, built on first use
	down  time.Time         // no contact before this time after a network failure
	scope []string
}

func newMirror(s *Server, mirrors []Mirror, ttl time.Duration, rt http.RoundTripper) (*mirror, error) {
	m := &mirror{s: s, ttl: ttl, upstreams: map[string]*upstream{}, namespaces: map[string]string{}, fetching: map[digest.Digest]*blobFetch{}, prefetchSem: make(chan struct{}, 4)}
	if s.cfg.ReadOnly {
		return nil, fmt.Errorf("registry server: mirror mode keeps what it fetches and links: it does not go with a read-only hub")
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	for _, mr := range mirrors {
		if _, dup := m.upstreams[mr.Registry]; dup {
			return nil, fmt.Errorf("registry server: mirror %s given twice", mr.Registry)
		}
		m.namespaces[Namespace(mr.Registry)] = mr.Registry
		if mr.URL == "" {
			m.upstreams[mr.Registry] = nil
			continue
		}
		u, err := url.Parse(mr.URL)
		if err != nil {
			return nil, fmt.Errorf("registry server: mirror %s: %w", mr.Registry, err)
		}
		var opts []name.Option
		if u.Scheme == "http" {
			opts = append(opts, name.Insecure)
		}
		reg, err := name.NewRegistry(u.Host, opts...)
		if err != nil {
			return nil, fmt.Errorf("registry server: mirror %s: %w", mr.Registry, err)
		}
		m.upstreams[mr.Registry] = &upstream{name: mr.Registry, reg: reg, base: rt}
	}
	return m, nil
}

// route decides which repository of the hub answers r and rewrites r to it, fetching from
// upstream first when needed. Requests that are not mirror pulls come back unchanged. It
// returns nil when it answered r itself (a blob streamed from upstream as it is stored).
func (m *mirror) route(w http.ResponseWriter, r *http.Request) *http.Request {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return r
	}
	var kind, repo, ref string
	p := r.URL.Path
	if mm := manifestPath.FindStringSubmatch(p); mm != nil {
		kind, repo, ref = "manifests", mm[1], mm[2]
	} else if mm := blobPath.FindStringSubmatch(p); mm != nil && !strings.HasSuffix(mm[1], "/blobs/uploads") {
		kind, repo, ref = "blobs", mm[1], mm[2]
	} else if mm := tagsPath.FindStringSubmatch(p); mm != nil {
		kind, repo, ref = "tags", mm[1], "list"
	} else if mm := referrersPath.FindStringSubmatch(p); mm != nil {
		kind, repo, ref = "referrers", mm[1], mm[2]
	} else {
		return r
	}
	q := r.URL.Query()
	ns := q.Get("ns")
	var internal, local string
	switch {
	case ns != "":
		internal, local = Namespace(ns)+"/"+repo, repo
	default:
		first, rest, ok := strings.Cut(repo, "/")
		reg, known := m.namespaces[first]
		if !ok || !known || rest == "" {
			return r
		}
		ns, internal, local = reg, repo, rest
	}
	up := m.upstreams[ns]
	ctx := r.Context()
	target := internal
	switch kind {
	case "manifests":
		if _, err := digest.Parse(ref); err == nil {
			target = m.resolveManifestDigest(ctx, up, internal, local, digest.Digest(ref))
		} else {
			target = m.resolveTag(ctx, up, internal, local, ref)
		}
	case "blobs":
		if d, err := digest.Parse(ref); err == nil {
			var served bool
			if target, served = m.resolveBlob(ctx, w, r, up, internal, local, d); served {
				return nil
			}
		}
	default:
		if !m.repoExists(ctx, internal) && m.repoExists(ctx, local) {
			target = local
		}
	}
	out := r.Clone(ctx)
	q.Del("ns")
	out.URL.Path = "/v2/" + target + "/" + kind + "/" + ref
	out.URL.RawPath = ""
	out.URL.RawQuery = q.Encode()
	out.RequestURI = out.URL.RequestURI()
	return out
}

func tagLink(repo, tag string) string {
	return path.Join(repoPath(repo), "_manifests/tags", tag, "current/link")
}

func (m *mirror) exists(ctx context.Context, p string) bool {
	_, err := m.s.driver.Stat(ctx, p)
	return err == nil
}

func (m *mirror) repoExists(ctx context.Context, repo string) bool {
	return m.exists(ctx, path.Join(repoPath(repo), "_manifests"))
}

// tagDigest reads the digest repo:tag points at.
func (m *mirror) tagDigest(ctx context.Context, repo, tag string) (digest.Digest, bool) {
	b, err := m.s.driver.GetContent(ctx, tagLink(repo, tag))
	if err != nil {
		return "", false
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil || !m.exists(ctx, blobData(d)) {
		return "", false
	}
	return d, true
}

func (m *mirror) resolveTag(ctx context.Context, up *upstream, internal, local, tag string) string {
	if _, ok := m.tagDigest(ctx, internal, tag); ok {
		if up != nil && m.ttl > 0 && m.stale(ctx, internal, tag) {
			_, err, _ := m.flight.Do("tag\x00"+internal+"\x00"+tag, func() (any, error) {
				return nil, m.fetchManifest(context.WithoutCancel(ctx), up, internal, local, tag)
			})
			if err != nil {
				slog.Warn("registry mirror: re-checking tag upstream failed; serving the cached one",
					"registry", up.name, "repository", local, "tag", tag, "error", err)
			}
		}
		return internal
	}
	if _, ok := m.tagDigest(ctx, local, tag); ok {
		return local
	}
	if up != nil {
		_, err, _ := m.flight.Do("tag\x00"+internal+"\x00"+tag, func() (any, error) {
			if _, ok := m.tagDigest(ctx, internal, tag); ok {
				return nil, nil // fetched while we waited to get in
			}
			return nil, m.fetchManifest(context.WithoutCancel(ctx), up, internal, local, tag)
		})
		logUpstream(err, "registry mirror: fetching from upstream", "registry", up.name, "repository", local, "tag", tag)
	}
	return internal
}

func (m *mirror) stale(ctx context.Context, repo, tag string) bool {
	b, err := m.s.driver.GetContent(ctx, path.Join(mirrorRoot, repo, tag))
	if err != nil {
		return true // synced or pushed into the namespace, never checked: check once
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	return err != nil || time.Since(t) >= m.ttl
}

func (m *mirror) resolveManifestDigest(ctx context.Context, up *upstream, internal, local string, d digest.Digest) string {
	if m.exists(ctx, revisionLink(internal, d)) {
		return internal
	}
	if m.exists(ctx, revisionLink(local, d)) {
		return local
	}
	_, err, _ := m.flight.Do("manifest\x00"+internal+"\x00"+d.String(), func() (any, error) {
		if m.exists(ctx, revisionLink(internal, d)) {
			return nil, nil
		}
		ctx := context.WithoutCancel(ctx)
		if m.exists(ctx, blobData(d)) { // held under another repository: link it
			return nil, m.link(ctx, revisionLink(internal, d), d)
		}
		if up == nil {
			return nil, nil
		}
		return nil, m.fetchManifest(ctx, up, internal, local, d.String())
	})
	if up != nil {
		logUpstream(err, "registry mirror: fetching from upstream", "registry", up.name, "repository", local, "digest", d)
	}
	return internal
}

// resolveBlob finds blob d for a pull of internal. A blob that no repository of the hub has
// is fetched from upstream: the first GET streams it to its client while it is written and
// verified (served=true); concurrent requests for the digest wait for that one fetch, then
// read the stored blob. A HEAD fetches and keeps the blob too before it is answered: a
// "yes" for a blob only the upstream has would let a push into the mirror namespace skip
// an upload the hub then lacks.
func (m *mirror) resolveBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, up *upstream, internal, local string, d digest.Digest) (target string, served bool) {
	if m.exists(ctx, blobLink(internal, d)) && m.exists(ctx, blobData(d)) {
		return internal, false
	}
	if m.exists(ctx, blobLink(local, d)) && m.exists(ctx, blobData(d)) {
		return local, false
	}
	if up != nil {
		var to http.ResponseWriter
		if r.Method == http.MethodGet {
			to = w // a HEAD is answered from the stored copy once it is in
		}
		if m.ensureBlob(ctx, context.WithoutCancel(ctx), to, up, internal, local, d) {
			return "", true
		}
	}
	if m.exists(ctx, blobData(d)) && !m.exists(ctx, blobLink(internal, d)) {
		// held under another repository (or just fetched for one): link it here
		if err := m.link(context.WithoutCancel(ctx), blobLink(internal, d), d); err != nil {
			slog.Warn("registry mirror: linking blob", "repository", internal, "digest", d, "error", err)
		}
	}
	return internal, false
}

// blobFetch is one upstream blob download that other requests for the digest wait for.
type blobFetch struct{ done chan struct{} }

// ensureBlob makes the blob store hold d, fetching it from up (repository repo, kept in
// internal) unless it is there or being fetched; a fetch already running is waited for
// (until wait is done). The fetch streams to w when w is set: served says w was answered.
func (m *mirror) ensureBlob(wait, fetch context.Context, w http.ResponseWriter, up *upstream, internal, repo string, d digest.Digest) (served bool) {
	m.mu.Lock()
	f, following := m.fetching[d]
	stored := !following && m.exists(fetch, blobData(d))
	if !following && !stored {
		f = &blobFetch{done: make(chan struct{})}
		m.fetching[d] = f
	}
	m.mu.Unlock()
	switch {
	case stored:
		return false
	case following:
		select {
		case <-f.done:
		case <-wait.Done():
		}
		return false
	}
	served, err := m.streamBlob(fetch, w, up, internal, repo, d)
	m.mu.Lock()
	delete(m.fetching, d)
	m.mu.Unlock()
	close(f.done)
	logUpstream(err, "registry mirror: fetching blob from upstream", "registry", up.name, "repository", repo, "digest", d)
	return served
}

// prefetch fetches the blobs of a manifest just taken from upstream, in the background
// (a few at a time across the hub), so whatever the hub resolved for a client is complete
// when the upstream goes away, even if the client itself only looked at the manifest.
func (m *mirror) prefetch(up *upstream, internal, repo string, raw []byte) {
	var mf struct {
		Config *v1.Descriptor  `json:"config"`
		Layers []v1.Descriptor `json:"layers"`
	}
	if json.Unmarshal(raw, &mf) != nil {
		return
	}
	blobs := mf.Layers
	if mf.Config != nil {
		blobs = append([]v1.Descriptor{*mf.Config}, blobs...)
	}
	ctx := m.s.baseCtx
	for _, b := range blobs {
		if len(b.URLs) > 0 || b.Digest.Validate() != nil {
			continue // foreign layers are not the registry's
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			select {
			case m.prefetchSem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-m.prefetchSem }()
			m.ensureBlob(ctx, ctx, nil, up, internal, repo, b.Digest)
			if ctx.Err() == nil && m.exists(ctx, blobData(b.Digest)) && !m.exists(ctx, blobLink(internal, b.Digest)) {
				_ = m.link(ctx, blobLink(internal, b.Digest), b.Digest)
			}
		}()
	}
}

// wait waits for background fetches (after the Server's context is cancelled).
func (m *mirror) wait() { m.wg.Wait() }

// streamBlob downloads blob d of repo from upstream into the blob store (verified against
// d, then linked into internal) and sends it to w as it arrives (w nil: to nobody). served
// says whether w got a response (then a failure shows to the client as a cut body, and
// nothing is stored).
func (m *mirror) streamBlob(ctx context.Context, w http.ResponseWriter, up *upstream, internal, repo string, d digest.Digest) (served bool, err error) {
	resp, err := up.do(ctx, http.MethodGet, repo, "blobs", d.String(), "")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if err := m.s.enterWrite(ctx); err != nil {
		return false, err
	}
	defer m.s.leaveWrite()
	// an upload directory as distribution makes them (a UUID with a startedat file), so
	// the upload purger removes what a crash leaves behind.
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	h := hex.EncodeToString(id)
	dir := path.Join(repoPath(internal), "_uploads", h[:8]+"-"+h[8:12]+"-"+h[12:16]+"-"+h[16:20]+"-"+h[20:])
	if err := m.s.driver.PutContent(ctx, path.Join(dir, "startedat"), []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return false, err
	}
	tmp := path.Join(dir, "data")
	fw, err := m.s.driver.Writer(ctx, tmp, false)
	if err != nil {
		return false, err
	}
	cancel := func() {
		_ = fw.Cancel(ctx)
		_ = fw.Close()
		_ = m.s.driver.Delete(ctx, path.Dir(tmp))
	}
	served = w != nil
	client := io.Discard
	if served {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		if resp.ContentLength >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
		}
		w.WriteHeader(http.StatusOK)
		client = &clientWriter{w: w}
	}
	vr := d.Verifier()
	if _, err := io.Copy(io.MultiWriter(fw, vr, client), resp.Body); err != nil {
		up.failed(err)
		cancel()
		return served, fmt.Errorf("blob %s: %w", d, err)
	}
	if !vr.Verified() {
		cancel()
		return served, fmt.Errorf("blob %s: upstream sent content with another digest", d)
	}
	if err := fw.Commit(ctx); err != nil {
		cancel()
		return served, err
	}
	if err := fw.Close(); err != nil {
		return served, err
	}
	if err := m.s.driver.Move(ctx, tmp, blobData(d)); err != nil {
		return served, err
	}
	_ = m.s.driver.Delete(ctx, path.Dir(tmp))
	return served, m.s.driver.PutContent(ctx, blobLink(internal, d), []byte(d.String()))
}

// clientWriter writes to a client until the client goes away, then drops the rest, so
// the download into the store goes on for the requests waiting on it.
type clientWriter struct {
	w    io.Writer
	gone bool
}

func (c *clientWriter) Write(p []byte) (int, error) {
	if !c.gone {
		if _, err := c.w.Write(p); err != nil {
			c.gone = true
		}
	}
	return len(p), nil
}

// link writes a distribution link file, fenced against garbage collection.
func (m *mirror) link(ctx context.Context, p string, d digest.Digest) error {
	if err := m.s.enterWrite(ctx); err != nil {
		return err
	}
	defer m.s.leaveWrite()
	return m.s.driver.PutContent(ctx, p, []byte(d.String()))
}

// client returns the upstream's authenticated transport, or an error while it is down.
func (u *upstream) client(ctx context.Context, repo string) (*http.Client, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if time.Now().Before(u.down) {
		return nil, fmt.Errorf("upstream %s unreachable (retrying after %s)", u.reg, u.down.Format(time.RFC3339))
	}
	if u.rt == nil {
		// credentials (docker config.json of the hub's user) are looked up under the
		// registry's own name (docker.io), then the upstream host's.
		auth := authn.Anonymous
		for _, host := range []string{u.name, u.reg.RegistryStr()} {
			reg, err := name.NewRegistry(host)
			if err != nil {
				continue
			}
			if a, err := authn.Resolve(ctx, authn.DefaultKeychain, reg); err == nil && a != authn.Anonymous {
				auth = a
				break
			}
		}
		rt, err := transport.NewWithContext(ctx, u.reg, auth, u.base, []string{u.reg.Repo(repo).Scope(transport.PullScope)})
		if err != nil {
			u.down = time.Now().Add(upstreamBackoff)
			return nil, fmt.Errorf("upstream %s: %w", u.reg, err)
		}
		u.rt = rt
	}
	return &http.Client{Transport: u.rt}, nil
}

// failed marks the upstream down after a network error (not after an HTTP answer).
func (u *upstream) failed(err error) {
	if err == nil || ctxErr(err) {
		return
	}
	u.mu.Lock()
	u.down = time.Now().Add(upstreamBackoff)
	u.mu.Unlock()
}

// logUpstream logs a failed upstream fetch: a warning, or debug when the upstream simply
// does not have the content (the client gets the hub's 404 either way).
func logUpstream(err error, msg string, args ...any) {
	if err == nil {
		return
	}
	args = append(args, "error", err)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		slog.Debug(msg, args...)
		return
	}
	slog.Warn(msg, args...)
}

func ctxErr(err error) bool {
	return err == context.Canceled || err == context.DeadlineExceeded
}

func (u *upstream) do(ctx context.Context, method, repo, kind, ref string, accept string) (*http.Response, error) {
	c, err := u.client(ctx, repo)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("%s://%s/v2/%s/%s/%s", u.reg.Scheme(), u.reg.RegistryStr(), repo, kind, ref), nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		u.failed(err)
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, transport.CheckError(resp, http.StatusOK)
	}
	return resp, nil
}

// servable reports whether the App can serve raw as a manifest, by the rules it reads a
// stored one with (schema 2, a known or absent mediaType), and whether a push of it would
// be accepted (descriptors checkManifest takes). What an upstream sends is stored as is,
// and a document the App cannot read would answer every pull of its tag with a 500 from
// then on.
func servable(raw []byte) error {
	var v struct {
		manifestRefs
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	if v.SchemaVersion == nil || *v.SchemaVersion != 2 {
		return errors.New("schemaVersion is not 2")
	}
	if bad := v.badDescriptor(); bad != nil {
		return fmt.Errorf("descriptor %v: %v", bad["digest"], bad["reason"])
	}
	mt := v.MediaType
	if mt == "" {
		mt = v1.MediaTypeImageManifest
		if v.Manifests != nil {
			mt = v1.MediaTypeImageIndex
		}
	}
	if !v2Manifests[mt] {
		return fmt.Errorf("media type %q", mt)
	}
	_, _, err := distribution.UnmarshalManifest(mt, raw)
	return err
}

// fetchManifest gets repo:ref (a tag or digest) from upstream and stores it in internal,
// tagged when ref is a tag (with the time of the check, for Config.MirrorTTL). Storing an
// unchanged manifest again rewrites the same links: nothing moves.
func (m *mirror) fetchManifest(ctx context.Context, up *upstream, internal, repo, ref string) error {
	resp, err := up.do(ctx, http.MethodGet, repo, "manifests", ref, allManifestTypes+", application/vnd.oci.artifact.manifest.v1+json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestLen+1))
	if err != nil {
		up.failed(err)
		return err
	}
	if len(raw) > maxManifestLen {
		return fmt.Errorf("manifest %s:%s larger than %d bytes", repo, ref, maxManifestLen)
	}
	d := digest.FromBytes(raw)
	isTag := !strings.Contains(ref, ":")
	if !isTag && d.String() != ref {
		return fmt.Errorf("manifest %s@%s: upstream sent content with digest %s", repo, ref, d)
	}
	if err := servable(raw); err != nil {
		return fmt.Errorf("manifest %s:%s: upstream sent no manifest the hub can serve: %w", repo, ref, err)
	}
	if err := m.s.enterWrite(ctx); err != nil {
		return err
	}
	defer m.s.leaveWrite()
	if !m.exists(ctx, blobData(d)) {
		if err := m.s.driver.PutContent(ctx, blobData(d), raw); err != nil {
			return err
		}
	}
	if err := m.s.driver.PutContent(ctx, revisionLink(internal, d), []byte(d.String())); err != nil {
		return err
	}
	var mf manifestFields
	if json.Unmarshal(raw, &mf) == nil && mf.Subject != nil && mf.Subject.Digest.Validate() == nil {
		desc := v1.Descriptor{MediaType: mf.MediaType, Digest: d, Size: int64(len(raw)), ArtifactType: mf.ArtifactType, Annotations: mf.Annotations}
		if desc.ArtifactType == "" && mf.Config != nil {
			desc.ArtifactType = mf.Config.MediaType
		}
		if err := m.s.addReferrer(ctx, internal, mf.Subject.Digest, desc); err != nil {
			return err
		}
	}
	if isTag {
		tagDir := path.Join(repoPath(internal), "_manifests/tags", ref)
		if err := m.s.driver.PutContent(ctx, path.Join(tagDir, "index", d.Algorithm().String(), d.Encoded(), "link"), []byte(d.String())); err != nil {
			return err
		}
		if err := m.s.driver.PutContent(ctx, path.Join(tagDir, "current/link"), []byte(d.String())); err != nil {
			return err
		}
		if err := m.s.driver.PutContent(ctx, path.Join(mirrorRoot, internal, ref), []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
			return err
		}
	}
	m.prefetch(up, internal, repo, raw)
	return nil
}
