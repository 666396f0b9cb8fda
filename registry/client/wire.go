package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// acceptManifests is the Accept header of every manifest request: every manifest type, so
// the registry answers with the stored bytes and never converts them.
var acceptManifests = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.OCIImageIndex),
	string(types.DockerManifestSchema2), string(types.DockerManifestList),
	"application/vnd.oci.artifact.manifest.v1+json",
}, ", ")

// wire is a raw OCI distribution client of one registry: the requests sync and copy need,
// each one round trip, over an authenticated transport (keychain or WithAuth, bearer
// token scopes widened on demand), so the number of requests is exactly what we send.
type wire struct {
	reg    name.Registry
	base   string
	client *http.Client

	requests atomic.Int64 // every request sent
	heads    atomic.Int64 // manifest and blob HEADs
}

// newWire connects to reg (one ping; a bearer token for scopes).
func newWire(ctx context.Context, reg name.Registry, o *options, scopes []string) (*wire, error) {
	var auth authn.Authenticator = authn.Anonymous
	if o.auth != nil {
		auth = o.auth
	} else if o.keychain != nil {
		a, err := authn.Resolve(ctx, o.keychain, reg)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", reg, err)
		}
		auth = a
	}
	t := transport.NewUserAgent(o.httpTransport(), o.userAgent)
	if o.retries > 0 {
		t = transport.NewRetry(t,
			transport.WithRetryBackoff(transport.Backoff{Duration: o.retryDelay, Factor: 3, Jitter: 0.1, Steps: o.retries + 1}),
			transport.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
				http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests))
	}
	rt, err := transport.NewWithContext(ctx, reg, auth, t, scopes)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", reg, err)
	}
	return &wire{
		reg:  reg,
		base: reg.Scheme() + "://" + reg.RegistryStr(),
		// no redirects to follow by hand: http.Client follows blob redirects itself.
		client: &http.Client{Transport: rt},
	}, nil
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

// catalog lists every repository of the registry.
func (w *wire) catalog(ctx context.Context) ([]string, error) {
	var out []string
	u := "/v2/_catalog?n=1000"
	for u != "" {
		resp, err := w.do(ctx, http.MethodGet, u, nil, nil, 0)
		if err != nil {
			return nil, fmt.Errorf("list repositories of %s: %w", w.reg, err)
		}
		if err := check(resp, http.StatusOK); err != nil {
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
		resp, err := w.do(ctx, http.MethodGet, u, nil, nil, 0)
		if err != nil {
			return nil, fmt.Errorf("list tags of %s/%s: %w", w.reg, repo, err)
		}
		if err := check(resp, http.StatusOK); err != nil {
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
func (w *wire) headManifest(ctx context.Context, repo, ref string) (v1.Descriptor, bool, error) {
	resp, err := w.do(ctx, http.MethodHead, "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {acceptManifests}}, nil, 0)
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	drain(resp)
	if resp.StatusCode == http.StatusNotFound {
		return v1.Descriptor{}, false, nil
	}
	if err := check(resp, http.StatusOK); err != nil {
		return v1.Descriptor{}, false, err
	}
	h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		// a registry that does not say the digest on HEAD: read the manifest and hash it.
		m, found, err := w.getManifest(ctx, repo, ref)
		if err != nil || !found {
			return v1.Descriptor{}, false, err
		}
		return v1.Descriptor{Digest: m.digest, Size: int64(len(m.raw)), MediaType: m.mediaType}, true, nil
	}
	return v1.Descriptor{Digest: h, Size: resp.ContentLength, MediaType: types.MediaType(resp.Header.Get("Content-Type"))}, true, nil
}

// manifest is a manifest's raw bytes as stored, with what it is.
type manifest struct {
	raw       []byte
	mediaType types.MediaType
	digest    v1.Hash
}

// getManifest fetches repo:ref; found=false on 404. A manifest fetched by digest is
// checked against it.
func (w *wire) getManifest(ctx context.Context, repo, ref string) (manifest, bool, error) {
	resp, err := w.do(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {acceptManifests}}, nil, 0)
	if err != nil {
		return manifest{}, false, err
	}
	if resp.StatusCode == http.StatusNotFound {
		drain(resp)
		return manifest{}, false, nil
	}
	if err := check(resp, http.StatusOK); err != nil {
		return manifest{}, false, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return manifest{}, false, err
	}
	h, _, _ := v1.SHA256(bytesReader(raw))
	if strings.Contains(ref, ":") && ref != h.String() {
		return manifest{}, false, fmt.Errorf("manifest %s/%s@%s: content has digest %s", w.reg, repo, ref, h)
	}
	mt := types.MediaType(resp.Header.Get("Content-Type"))
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if json.Unmarshal(raw, &probe) == nil && probe.MediaType != "" {
		mt = probe.MediaType
	}
	return manifest{raw: raw, mediaType: mt, digest: h}, true, nil
}

// putManifest stores raw under repo:ref and returns the response headers.
func (w *wire) putManifest(ctx context.Context, repo, ref string, m manifest) (http.Header, error) {
	resp, err := w.do(ctx, http.MethodPut, "/v2/"+repo+"/manifests/"+ref,
		http.Header{"Content-Type": {string(m.mediaType)}}, bytesReader(m.raw), int64(len(m.raw)))
	if err != nil {
		return nil, fmt.Errorf("put manifest %s/%s:%s: %w", w.reg, repo, ref, err)
	}
	if err := check(resp, http.StatusCreated, http.StatusOK, http.StatusAccepted); err != nil {
		return nil, fmt.Errorf("put manifest %s/%s:%s: %w", w.reg, repo, ref, err)
	}
	drain(resp)
	return resp.Header, nil
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

// startUpload opens an upload session in repo, asking the registry to mount d from the
// repository from (same registry) when from is set. mounted=true means the blob is there
// already; otherwise location is where to PUT it.
func (w *wire) startUpload(ctx context.Context, repo string, d v1.Hash, from string) (mounted bool, location string, err error) {
	u := "/v2/" + repo + "/blobs/uploads/"
	if from != "" {
		u += "?" + url.Values{"mount": {d.String()}, "from": {from}}.Encode()
	}
	resp, err := w.do(ctx, http.MethodPost, u, nil, http.NoBody, 0)
	if err != nil {
		return false, "", err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
		if from != "" {
			return true, "", nil
		}
	case http.StatusAccepted:
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil || resp.Header.Get("Location") == "" {
			return false, "", fmt.Errorf("upload to %s/%s: no upload location", w.reg, repo)
		}
		return false, loc.String(), nil
	}
	return false, "", fmt.Errorf("upload to %s/%s: %w", w.reg, repo, check(resp, http.StatusAccepted))
}

// finishUpload sends the whole blob to an upload location in one PUT.
func (w *wire) finishUpload(ctx context.Context, location string, d v1.Hash, size int64, body io.Reader) error {
	u, err := url.Parse(location)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	resp, err := w.do(ctx, http.MethodPut, u.String(), http.Header{"Content-Type": {"application/octet-stream"}}, body, size)
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
