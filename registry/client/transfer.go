package client

import (
	"bytes"
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
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// This file speaks the distribution protocol for the hot paths of push and pull, on top of
// go-containerregistry's authenticating transport (ping, basic and bearer auth, token
// scopes, scheme selection). Doing it here rather than through remote.Write lets a blob
// upload take one round trip after the existence check (the spec's single-POST upload,
// with a POST + PUT fallback) instead of four, lets blob bodies go out with sendfile, and
// lets a pulled blob be hashed once, by the store, instead of twice.

// smallBlob is the largest blob sent with a single POST on the first try: a registry that
// does not implement it answers 202 and the body is sent again with a PUT, which for a
// small blob costs little. Bigger blobs always use POST then PUT.
const smallBlob = 8 << 20

// maxManifest bounds how much of a manifest response is read.
const maxManifest = 32 << 20

var manifestAccept = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.DockerManifestSchema2),
	string(types.OCIImageIndex), string(types.DockerManifestList),
	string(types.DockerManifestSchema1), string(types.DockerManifestSchema1Signed),
}, ",")

// session is an authenticated conversation with one repository of a registry.
type session struct {
	repo   name.Repository
	client *http.Client
	o      *options
}

// newSession pings the registry and authenticates for repo: push adds push access, and
// every repository in mountFrom gets pull access (cross-repository mounts).
func newSession(ctx context.Context, repo name.Repository, o *options, push bool, mountFrom []name.Repository) (*session, error) {
	var s *session
	err := o.retry(ctx, func() error {
		auth := o.auth
		if auth == nil {
			var err error
			if auth, err = authn.Resolve(ctx, o.keychain, repo); err != nil {
				return fmt.Errorf("credentials for %s: %w", repo.RegistryStr(), err)
			}
		}
		scopes := []string{repo.Scope(transport.PullScope)}
		if push {
			scopes = []string{repo.Scope(transport.PushScope)}
		}
		for _, m := range mountFrom {
			scopes = append(scopes, m.Scope(transport.PullScope))
		}
		tr, err := transport.NewWithContext(ctx, repo.Registry, auth, transport.NewUserAgent(o.httpTransport(), o.userAgent), scopes)
		if err != nil {
			return err
		}
		s = &session{repo: repo, client: &http.Client{Transport: tr}, o: o}
		return nil
	})
	return s, err
}

func (s *session) url(path string) string {
	// The transport replaces the scheme with the one the ping found.
	return fmt.Sprintf("%s://%s/v2/%s/%s", s.repo.Registry.Scheme(), s.repo.RegistryStr(), s.repo.RepositoryStr(), path)
}

func (s *session) do(ctx context.Context, method, u string, body io.Reader, size int64, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return s.client.Do(req)
}

// headManifest returns the descriptor that ref (tag or digest) names, ok=false if none.
func (s *session) headManifest(ctx context.Context, ref string) (v1.Descriptor, bool, error) {
	resp, err := s.do(ctx, http.MethodHead, s.url("manifests/"+ref), nil, 0, map[string]string{"Accept": manifestAccept})
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return v1.Descriptor{}, false, nil
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return v1.Descriptor{}, false, err
	}
	h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return v1.Descriptor{}, false, nil // no usable digest: treat as unknown
	}
	return v1.Descriptor{Digest: h, Size: resp.ContentLength, MediaType: types.MediaType(resp.Header.Get("Content-Type"))}, true, nil
}

// getManifest fetches the manifest ref names and checks it against ref when ref is a
// digest. The media type comes from the manifest itself when it says, else the header.
func (s *session) getManifest(ctx context.Context, ref string) ([]byte, v1.Descriptor, error) {
	var raw []byte
	var desc v1.Descriptor
	err := s.o.retry(ctx, func() error {
		resp, err := s.do(ctx, http.MethodGet, s.url("manifests/"+ref), nil, 0, map[string]string{"Accept": manifestAccept})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := transport.CheckError(resp, http.StatusOK); err != nil {
			return err
		}
		raw, err = io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
		if err != nil {
			return err
		}
		if len(raw) > maxManifest {
			return fmt.Errorf("manifest %s is larger than %d bytes", ref, maxManifest)
		}
		h, n, _ := v1.SHA256(bytes.NewReader(raw))
		if want, err := v1.NewHash(ref); err == nil && want != h {
			return fmt.Errorf("manifest %s: content has digest %s", ref, h)
		}
		desc = v1.Descriptor{Digest: h, Size: n, MediaType: manifestMediaType(raw, resp.Header.Get("Content-Type"))}
		return nil
	})
	return raw, desc, err
}

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

// putManifest stores raw under ref (tag or digest).
func (s *session) putManifest(ctx context.Context, ref string, raw []byte, mt types.MediaType) error {
	return s.o.retry(ctx, func() error {
		resp, err := s.do(ctx, http.MethodPut, s.url("manifests/"+ref), bytes.NewReader(raw), int64(len(raw)), map[string]string{"Content-Type": string(mt)})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return transport.CheckError(resp, http.StatusCreated, http.StatusOK, http.StatusAccepted)
	})
}

// blobExists asks with HEAD whether the repository has blob h.
func (s *session) blobExists(ctx context.Context, h v1.Hash) (bool, error) {
	resp, err := s.do(ctx, http.MethodHead, s.url("blobs/"+h.String()), nil, 0, nil)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, transport.CheckError(resp, http.StatusOK)
}

// Upload outcomes.
const (
	blobExisted = "exists"
	blobMounted = "mounted"
	blobPushed  = "pushed"
	blobFailed  = "failed" // not moved: the operation failed first
)

// pushBlob makes sure the repository has blob h: it checks with HEAD, mounts it from
// mountFrom (a repository of the same registry) when given, else uploads open()'s bytes.
func (s *session) pushBlob(ctx context.Context, h v1.Hash, size int64, open func() (io.ReadCloser, error), mountFrom string) (string, error) {
	var outcome string
	err := s.o.retry(ctx, func() error {
		ok, err := s.blobExists(ctx, h)
		if err != nil {
			return err
		}
		if ok {
			outcome = blobExisted
			return nil
		}
		q := url.Values{}
		var body func() (io.ReadCloser, error)
		switch {
		case mountFrom != "":
			q.Set("mount", h.String())
			q.Set("from", mountFrom)
		case size <= smallBlob:
			q.Set("digest", h.String())
			body = open
		}
		loc, done, err := s.startUpload(ctx, q, size, body)
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
		if err := s.putUpload(ctx, loc, h, size, open); err != nil {
			return err
		}
		outcome = blobPushed
		return nil
	})
	return outcome, err
}

// startUpload POSTs to the upload endpoint (with the blob as body when body is set). It
// returns done when the registry created the blob (201), else the upload location.
func (s *session) startUpload(ctx context.Context, q url.Values, size int64, body func() (io.ReadCloser, error)) (string, bool, error) {
	u := s.url("blobs/uploads/")
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	n := int64(0)
	hdr := map[string]string{}
	if body != nil {
		rc, err := body()
		if err != nil {
			return "", false, err
		}
		defer rc.Close()
		rd, n = rc, size
		hdr["Content-Type"] = "application/octet-stream"
	}
	resp, err := s.do(ctx, http.MethodPost, u, rd, n, hdr)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated, http.StatusAccepted); err != nil {
		return "", false, err
	}
	if resp.StatusCode == http.StatusCreated {
		return "", true, nil
	}
	loc, err := resp.Location()
	if err != nil {
		return "", false, fmt.Errorf("upload session without a Location: %w", err)
	}
	return loc.String(), false, nil
}

// putUpload sends the whole blob to an upload session and completes it.
func (s *session) putUpload(ctx context.Context, loc string, h v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
	u, err := url.Parse(loc)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", h.String())
	u.RawQuery = q.Encode()
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	resp, err := s.do(ctx, http.MethodPut, u.String(), rc, size, map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return transport.CheckError(resp, http.StatusCreated)
}

// fetchBlob opens blob h for reading; the caller verifies the content.
func (s *session) fetchBlob(ctx context.Context, h v1.Hash) (io.ReadCloser, error) {
	resp, err := s.do(ctx, http.MethodGet, s.url("blobs/"+h.String()), nil, 0, nil)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp.Body, nil
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
