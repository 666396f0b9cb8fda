package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// This file speaks the distribution protocol itself, on top of go-containerregistry's
// authenticating transport (ping, basic and bearer auth, token scopes, scheme selection),
// for push, pull, sync and copy alike. Doing it here rather than through remote.Write
// lets a blob upload take one round trip after the existence check (the spec's
// single-POST upload, with a POST + PUT fallback) instead of four, lets blob bodies go out
// with sendfile, lets a pulled blob be hashed once, by the store, and keeps the number of
// requests exactly what we send.

// acceptManifests is the Accept header of every manifest request: every manifest type, so
// the registry answers with the stored bytes and never converts them.
var acceptManifests = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.OCIImageIndex),
	string(types.DockerManifestSchema2), string(types.DockerManifestList),
	string(types.DockerManifestSchema1), string(types.DockerManifestSchema1Signed),
	"application/vnd.oci.artifact.manifest.v1+json",
}, ", ")

// smallBlob is the largest blob sent with a single POST on the first try: a registry that
// does not implement it answers 202 and the body is sent again with a PUT, which for a
// small blob costs little. Bigger blobs always use POST then PUT.
const smallBlob = 8 << 20

// maxManifest bounds how much of a manifest response is read.
const maxManifest = 32 << 20

// wire is the client of one registry. Requests that can be repeated as they are
// (manifests, listings) are retried by its methods as the options say (WithRetry); a blob
// upload is retried whole by pushBlob, a blob download by whoever reads it.
type wire struct {
	reg    name.Registry
	base   string
	client *http.Client
	o      *options

	requests atomic.Int64 // every request sent
	heads    atomic.Int64 // manifest and blob HEADs
}

// newWire connects to reg (one ping, retried; a bearer token for scopes, widened on
// demand by the transport).
func newWire(ctx context.Context, reg name.Registry, o *options, scopes []string) (*wire, error) {
	var w *wire
	err := o.retry(ctx, func() error {
		var auth authn.Authenticator = authn.Anonymous
		if o.auth != nil {
			auth = o.auth
		} else if o.keychain != nil {
			a, err := authn.Resolve(ctx, o.keychain, reg)
			if err != nil {
				return fmt.Errorf("credentials for %s: %w", reg, err)
			}
			auth = a
		}
		rt, err := transport.NewWithContext(ctx, reg, auth, transport.NewUserAgent(o.httpTransport(), o.userAgent), scopes)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", reg, err)
		}
		w = &wire{
			reg:  reg,
			base: reg.Scheme() + "://" + reg.RegistryStr(),
			// no redirects to follow by hand: http.Client follows blob redirects itself.
			client: &http.Client{Transport: rt},
			o:      o,
		}
		return nil
	})
	return w, err
}

// repoScopes are the token scopes of a push to (push=true) or pull from repo, with pull
// access to every repository in mountFrom (cross-repository mounts).
func repoScopes(repo name.Repository, push bool, mountFrom []name.Repository) []string {
	scopes := []string{repo.Scope(transport.PullScope)}
	if push {
		scopes = []string{repo.Scope(transport.PushScope)}
	}
	for _, m := range mountFrom {
		scopes = append(scopes, m.Scope(transport.PullScope))
	}
	return scopes
}

func (w *wire) do(ctx context.Context, method, u string, hdr http.Header, body io.Reader, size int64) (*http.Response, error) {
	if !strings.HasPrefix(u, "http") {
		u = w.base + u
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.ContentLength = size
	}
	w.requests.Add(1)
	if method == http.MethodHead {
		w.heads.Add(1)
	}
	return w.client.Do(req)
}

// check turns a response that is not one of the wanted statuses into a transport.Error
// (with the registry's error codes), closing its body.
func check(resp *http.Response, codes ...int) error {
	for _, c := range codes {
		if resp.StatusCode == c {
			return nil
		}
	}
	defer resp.Body.Close()
	return transport.CheckError(resp, codes...)
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// nextLink returns the URL of a Link: <...>; rel="next" header, resolved against u.
func nextLink(resp *http.Response) string {
	l := resp.Header.Get("Link")
	if l == "" {
		return ""
	}
	start, end := strings.Index(l, "<"), strings.Index(l, ">")
	if start < 0 || end < start || !strings.Contains(l[end:], `rel="next"`) {
		return ""
	}
	next, err := resp.Request.URL.Parse(l[start+1 : end])
	if err != nil {
		return ""
	}
	return next.String()
}

// get GETs u (retried) and returns a 200 response, whose body the caller closes.
func (w *wire) get(ctx context.Context, u string, hdr http.Header) (*http.Response, error) {
	var resp *http.Response
	err := w.o.retry(ctx, func() error {
		var err error
		if resp, err = w.do(ctx, http.MethodGet, u, hdr, nil, 0); err != nil {
			return err
		}
		return check(resp, http.StatusOK)
	})
	return resp, err
}

// catalog lists every repository of the registry.
func (w *wire) catalog(ctx context.Context) ([]string, error) {
	var out []string
	u := "/v2/_catalog?n=1000"
	for u != "" {
		resp, err := w.get(ctx, u, nil)
		if err != nil {
			return nil, fmt.Errorf("list repositories of %s: %w", w.reg, err)
		}
		var c struct {
			Repositories []string `json:"repositories"`
		}
		err = json.NewDecoder(resp.Body).Decode(&c)
		u = nextLink(resp)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list repositories of %s: %w", w.reg, err)
		}
		out = append(out, c.Repositories...)
	}
	return out, nil
}

// tags lists the tags of repo.
func (w *wire) tags(ctx context.Context, repo string) ([]string, error) {
	var out []string
	u := "/v2/" + repo + "/tags/list"
	for u != "" {
		resp, err := w.get(ctx, u, nil)
		if err != nil {
			return nil, fmt.Errorf("list tags of %s/%s: %w", w.reg, repo, err)
		}
		var t struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(resp.Body).Decode(&t)
		u = nextLink(resp)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list tags of %s/%s: %w", w.reg, repo, err)
		}
		out = append(out, t.Tags...)
	}
	return out, nil
}

// headManifest returns the descriptor of the manifest repo:ref, or found=false.
func (w *wire) headManifest(ctx context.Context, repo, ref string) (desc v1.Descriptor, found bool, err error) {
	var resp *http.Response
	err = w.o.retry(ctx, func() error {
		if resp, err = w.do(ctx, http.MethodHead, "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {acceptManifests}}, nil, 0); err != nil {
			return err
		}
		drain(resp)
		if resp.StatusCode == http.StatusNotFound {
			return nil
		}
		return check(resp, http.StatusOK)
	})
	if err != nil || resp.StatusCode == http.StatusNotFound {
		return v1.Descriptor{}, false, err
	}
	h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		// a registry that does not say the digest on HEAD: read the manifest and hash it.
		m, found, err := w.getManifest(ctx, repo, ref)
		if err != nil || !found {
			return v1.Descriptor{}, false, err
		}
		return m.descriptor(), true, nil
	}
	return v1.Descriptor{Digest: h, Size: resp.ContentLength, MediaType: types.MediaType(resp.Header.Get("Content-Type"))}, true, nil
}

// manifest is a manifest's raw bytes as stored, with what it is.
type manifest struct {
	raw       []byte
	mediaType types.MediaType
	digest    v1.Hash
}

func (m manifest) descriptor() v1.Descriptor {
	return v1.Descriptor{Digest: m.digest, Size: int64(len(m.raw)), MediaType: m.mediaType}
}

// getManifest fetches repo:ref; found=false on 404. A manifest fetched by digest is
// checked against it. The media type comes from the manifest itself when it says.
func (w *wire) getManifest(ctx context.Context, repo, ref string) (m manifest, found bool, err error) {
	err = w.o.retry(ctx, func() error {
		resp, err := w.do(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {acceptManifests}}, nil, 0)
		if err != nil {
			return err
		}
		if found = resp.StatusCode != http.StatusNotFound; !found {
			drain(resp)
			return nil
		}
		if err := check(resp, http.StatusOK); err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
		if err != nil {
			return err
		}
		if len(raw) > maxManifest {
			return fmt.Errorf("manifest %s/%s:%s is larger than %d bytes", w.reg, repo, ref, maxManifest)
		}
		h, _, _ := v1.SHA256(bytesReader(raw))
		if want, err := v1.NewHash(ref); err == nil && want != h {
			return fmt.Errorf("manifest %s/%s@%s: content has digest %s", w.reg, repo, ref, h)
		}
		m = manifest{raw: raw, mediaType: manifestMediaType(raw, resp.Header.Get("Content-Type")), digest: h}
		return nil
	})
	return m, found && err == nil, err
}

// mustGetManifest is getManifest for a manifest that has to be there: a 404 is an error.
func (w *wire) mustGetManifest(ctx context.Context, repo, ref string) (manifest, error) {
	m, found, err := w.getManifest(ctx, repo, ref)
	if err == nil && !found {
		err = fmt.Errorf("manifest %s/%s:%s: not found (MANIFEST_UNKNOWN)", w.reg, repo, ref)
	}
	return m, err
}

// manifestMediaType is what a manifest says it is, else what the registry said, else what
// its fields make it.
func manifestMediaType(raw []byte, header string) types.MediaType {
	var probe struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(raw, &probe) == nil {
		if probe.MediaType != "" {
			return types.MediaType(probe.MediaType)
		}
		if header != "" && header != "application/json" && header != "text/plain" {
			return types.MediaType(header)
		}
		if len(probe.Manifests) > 0 {
			return types.OCIImageIndex
		}
		return types.OCIManifestSchema1
	}
	return types.MediaType(header)
}

// putManifest stores m under repo:ref (tag or digest) and returns the response headers.
func (w *wire) putManifest(ctx context.Context, repo, ref string, m manifest) (http.Header, error) {
	var hdr http.Header
	err := w.o.retry(ctx, func() error {
		resp, err := w.do(ctx, http.MethodPut, "/v2/"+repo+"/manifests/"+ref,
			http.Header{"Content-Type": {string(m.mediaType)}}, bytesReader(m.raw), int64(len(m.raw)))
		if err != nil {
			return err
		}
		if err := check(resp, http.StatusCreated, http.StatusOK, http.StatusAccepted); err != nil {
			return err
		}
		drain(resp)
		hdr = resp.Header
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("put manifest %s/%s:%s: %w", w.reg, repo, ref, err)
	}
	return hdr, nil
}

// blobExists says whether repo has blob d.
func (w *wire) blobExists(ctx context.Context, repo string, d v1.Hash) (bool, error) {
	resp, err := w.do(ctx, http.MethodHead, "/v2/"+repo+"/blobs/"+d.String(), nil, nil, 0)
	if err != nil {
		return false, err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, check(resp, http.StatusOK)
}

// getBlob opens blob d of repo.
func (w *wire) getBlob(ctx context.Context, repo string, d v1.Hash) (io.ReadCloser, error) {
	resp, err := w.do(ctx, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil, nil, 0)
	if err != nil {
		return nil, err
	}
	if err := check(resp, http.StatusOK); err != nil {
		return nil, fmt.Errorf("get blob %s/%s@%s: %w", w.reg, repo, d, err)
	}
	return resp.Body, nil
}

// Upload outcomes.
const (
	blobExisted = "exists"
	blobMounted = "mounted"
	blobPushed  = "pushed"
	blobFailed  = "failed" // not moved: the operation failed first
)

// pushBlob makes sure repo has blob d of size bytes: it mounts it from mountFrom (a
// repository of the same registry) when given, else checks with HEAD and uploads open()'s
// bytes; a blob of up to smallBlob bytes in one POST when onePost is set. The upload is
// retried whole, open called again each time.
func (w *wire) pushBlob(ctx context.Context, repo string, d v1.Hash, size int64, open func() (io.ReadCloser, error), mountFrom string, onePost bool) (string, error) {
	outcome := blobFailed
	err := w.o.retry(ctx, func() error {
		q := url.Values{}
		var body func() (io.ReadCloser, error)
		switch {
		case mountFrom != "":
			// a mount answers 201 for a blob the repository has already: no HEAD first
			q.Set("mount", d.String())
			q.Set("from", mountFrom)
		default:
			ok, err := w.blobExists(ctx, repo, d)
			if err != nil {
				return err
			}
			if ok {
				outcome = blobExisted
				return nil
			}
			if onePost && size <= smallBlob {
				q.Set("digest", d.String())
				body = open
			}
		}
		loc, done, err := w.startUpload(ctx, repo, q, size, body)
		if err != nil {
			return err
		}
		if done {
			outcome = blobPushed
			if mountFrom != "" {
				outcome = blobMounted
			}
			return nil
		}
		if err := w.putUpload(ctx, loc, d, size, open); err != nil {
			return err
		}
		outcome = blobPushed
		return nil
	})
	return outcome, err
}

// startUpload POSTs to repo's upload endpoint with the query q (a mount, or the digest of
// a body sent along), the blob as body when body is set. It returns done when the
// registry created the blob (201), else the upload location.
func (w *wire) startUpload(ctx context.Context, repo string, q url.Values, size int64, body func() (io.ReadCloser, error)) (loc string, done bool, err error) {
	u := "/v2/" + repo + "/blobs/uploads/"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader = http.NoBody
	n := int64(0)
	var hdr http.Header
	if body != nil {
		rc, err := body()
		if err != nil {
			return "", false, err
		}
		defer rc.Close()
		rd, n = rc, size
		hdr = http.Header{"Content-Type": {"application/octet-stream"}}
	}
	resp, err := w.do(ctx, http.MethodPost, u, hdr, rd, n)
	if err != nil {
		return "", false, err
	}
	if err := check(resp, http.StatusCreated, http.StatusAccepted); err != nil {
		return "", false, fmt.Errorf("upload to %s/%s: %w", w.reg, repo, err)
	}
	drain(resp)
	if resp.StatusCode == http.StatusCreated {
		return "", true, nil
	}
	l, err := resp.Location()
	if err != nil {
		return "", false, fmt.Errorf("upload to %s/%s: no upload location: %w", w.reg, repo, err)
	}
	return l.String(), false, nil
}

// putUpload sends the whole blob to an upload location in one PUT and completes it.
func (w *wire) putUpload(ctx context.Context, location string, d v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
	u, err := url.Parse(location)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	resp, err := w.do(ctx, http.MethodPut, u.String(), http.Header{"Content-Type": {"application/octet-stream"}}, rc, size)
	if err != nil {
		return err
	}
	if err := check(resp, http.StatusCreated, http.StatusNoContent, http.StatusOK); err != nil {
		return fmt.Errorf("upload blob %s: %w", d, err)
	}
	drain(resp)
	return nil
}

// referrers lists the manifests whose subject is d in repo: through the referrers API, or
// the fallback tag sha256-<hex> of registries without it (fallback=true).
func (w *wire) referrers(ctx context.Context, repo string, d v1.Hash) (descs []v1.Descriptor, fallback *manifest, err error) {
	resp, err := w.do(ctx, http.MethodGet, "/v2/"+repo+"/referrers/"+d.String(), http.Header{"Accept": {string(types.OCIImageIndex)}}, nil, 0)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), string(types.OCIImageIndex)) {
		// a long list comes in pages, each linking to the next
		for {
			var idx v1.IndexManifest
			err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&idx)
			next := nextLink(resp)
			resp.Body.Close()
			if err != nil {
				return nil, nil, fmt.Errorf("referrers of %s/%s@%s: %w", w.reg, repo, d, err)
			}
			descs = append(descs, idx.Manifests...)
			if next == "" {
				return descs, nil, nil
			}
			if resp, err = w.do(ctx, http.MethodGet, next, http.Header{"Accept": {string(types.OCIImageIndex)}}, nil, 0); err != nil {
				return nil, nil, err
			}
			if err := check(resp, http.StatusOK); err != nil {
				return nil, nil, fmt.Errorf("referrers of %s/%s@%s: %w", w.reg, repo, d, err)
			}
		}
	}
	drain(resp)
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest &&
		resp.StatusCode != http.StatusMethodNotAllowed {
		return nil, nil, fmt.Errorf("referrers of %s/%s@%s: %w", w.reg, repo, d, check(resp, http.StatusOK))
	}
	m, found, err := w.getManifest(ctx, repo, fallbackTag(d))
	if err != nil || !found {
		return nil, nil, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(m.raw, &idx); err != nil {
		return nil, nil, nil // not a referrers index: ignore the tag
	}
	return idx.Manifests, &m, nil
}

// fallbackTag is the OCI referrers tag schema: sha256-<hex>.
func fallbackTag(d v1.Hash) string { return d.Algorithm + "-" + d.Hex }

// isNotFound says whether err is a registry's 404.
func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// retry runs f until it succeeds, fails for good, or the retries are used up, waiting
// retryDelay, then 3x longer each time, between attempts.
func (o *options) retry(ctx context.Context, f func() error) error {
	delay := o.retryDelay
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || attempt >= o.retries || !transient(err) || ctx.Err() != nil {
			return err
		}
		slog.Debug("retrying", "error", err, "attempt", attempt+1, "wait", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay *= 3
	}
}

// transient reports whether err may go away when the request is tried again.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED)
}
