package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"

	"github.com/distribution/distribution/v3/registry/handlers"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// The referrers index (OCI distribution 1.1), which distribution v3.1.2 lacks, lives in
// the same storage as the registry: one small file per (subject, referrer) pair,
//
//	/sealos/v1/referrers/<repository>/<alg>/<subject hex>/<alg>_<referrer hex>
//
// holding the referrer's descriptor. One file per pair makes adding and removing a
// referrer a single atomic PutContent or Delete, with no read-modify-write to race on.
// Entries are written before the manifest PUT is acknowledged and removed when the
// manifest is deleted; on listing, entries whose manifest has gone are skipped and
// removed, so a crash between the two steps heals itself.
const (
	referrersRoot  = "/sealos/v1/referrers"
	registryRoot   = "/docker/registry/v2"
	maxManifestLen = 4 << 20 // distribution's own limit
)

// manifestFields are the parts of a manifest or index the hub looks at.
type manifestFields struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *v1.Descriptor    `json:"config"`
	Subject      *v1.Descriptor    `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

func referrerDir(repo string, subject digest.Digest) string {
	return path.Join(referrersRoot, repo, subject.Algorithm().String(), subject.Encoded())
}

func referrerFile(repo string, subject, referrer digest.Digest) string {
	return path.Join(referrerDir(repo, subject), referrer.Algorithm().String()+"_"+referrer.Encoded())
}

// Where distribution keeps a repository, and in it the links of its blobs and manifests.
const (
	layersDir    = "_layers"
	revisionsDir = "_manifests/revisions"
)

func repoPath(repo string) string { return path.Join(registryRoot, "repositories", repo) }

func revisionLink(repo string, d digest.Digest) string {
	return path.Join(repoPath(repo), revisionsDir, d.Algorithm().String(), d.Encoded(), "link")
}

func blobLink(repo string, d digest.Digest) string {
	return path.Join(repoPath(repo), layersDir, d.Algorithm().String(), d.Encoded(), "link")
}

func blobData(d digest.Digest) string {
	enc := d.Encoded()
	return path.Join(registryRoot, "blobs", d.Algorithm().String(), enc[:2], enc, "data")
}

// putManifest hands a manifest PUT to the App and, when the manifest has a subject,
// records it in the referrers index before the 201 goes out and answers with the
// OCI-Subject header.
func (s *Server) putManifest(app *handlers.App, w *logWriter, r *http.Request, repo, ref string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestLen+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", "reading manifest: "+err.Error(), nil)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	tags, ok := tagParams(w, r)
	if !ok {
		return
	}
	sparse := false
	if len(body) <= maxManifestLen {
		if ok, sparse = s.checkManifest(w, r, repo, body); !ok {
			return
		}
	}
	refAlias, _ := alias(ref)
	if d, ok := alias(ref); ok {
		// stored under its sha256 (what distribution compares the reference with), named
		// by the alias too once it is in
		v := d.Verifier()
		_, _ = v.Write(body)
		if !v.Verified() {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content", map[string]string{"digest": d.String()})
			return
		}
		c := digest.FromBytes(body)
		r = withRef(r, repo, "manifests", c.String())
		r.Body = io.NopCloser(bytes.NewReader(body))
		w.answerAs(d, func() error { return s.driver.PutContent(r.Context(), revisionLink(repo, d), []byte(c)) })
	}
	serve := func() {
		if sparse {
			s.putSparse(w, r, repo, body)
			return
		}
		app.ServeHTTP(w, r)
	}
	s.tagOnCreate(w, r, repo, ref, refAlias, tags, body)
	var mf manifestFields
	if len(body) > maxManifestLen || json.Unmarshal(body, &mf) != nil || mf.Subject == nil || mf.Subject.Digest.Validate() != nil {
		serve()
		return
	}
	desc := v1.Descriptor{
		MediaType:    mf.MediaType,
		Digest:       digest.FromBytes(body),
		Size:         int64(len(body)),
		ArtifactType: mf.ArtifactType,
		Annotations:  mf.Annotations,
	}
	if desc.MediaType == "" {
		desc.MediaType = r.Header.Get("Content-Type")
	}
	if desc.ArtifactType == "" && mf.Config != nil && mf.MediaType != v1.MediaTypeImageIndex {
		desc.ArtifactType = mf.Config.MediaType
	}
	subject := mf.Subject.Digest
	w.onWrite(func(status int) int {
		if status != http.StatusCreated {
			return status
		}
		if d := w.Header().Get("Docker-Content-Digest"); d != "" {
			if pd, err := digest.Parse(d); err == nil && pd.Algorithm() != desc.Digest.Algorithm() {
				desc.Digest = pd
			}
		}
		if err := s.addReferrer(r.Context(), repo, subject, desc); err != nil {
			slog.Error("registry: recording referrer", "repository", repo, "subject", subject, "error", err)
			return http.StatusInternalServerError
		}
		w.Header().Set("OCI-Subject", subject.String())
		return status
	})
	serve()
}

// deleteManifest hands a manifest DELETE to the App and drops the manifest from the
// referrers index of its subject once it is gone.
func (s *Server) deleteManifest(app *handlers.App, w *logWriter, r *http.Request, repo, ref string) {
	d, err := digest.Parse(ref)
	if err != nil { // a tag: the manifest stays, so does its index entry
		app.ServeHTTP(w, r)
		return
	}
	if d.Algorithm() != digest.Canonical {
		// deleted under its sha256, so that distribution untags it; the aliases go after
		if c, ok := resolveLink(r.Context(), s.driver, revisionLink(repo, d)); ok {
			r, d = withRef(r, repo, "manifests", c.String()), c
		}
	}
	var subject digest.Digest
	if _, err := s.driver.Stat(r.Context(), revisionLink(repo, d)); err == nil {
		if b, err := s.driver.GetContent(r.Context(), blobData(d)); err == nil {
			var mf manifestFields
			if json.Unmarshal(b, &mf) == nil && mf.Subject != nil && mf.Subject.Digest.Validate() == nil {
				subject = mf.Subject.Digest
			}
		}
	}
	w.onWrite(func(status int) int {
		if status != http.StatusAccepted {
			return status
		}
		if subject != "" {
			if err := s.driver.Delete(r.Context(), referrerFile(repo, subject, d)); err != nil && !isNotFound(err) {
				slog.Warn("registry: removing referrer", "repository", repo, "subject", subject, "error", err)
			}
		}
		s.dropAliases(r.Context(), app, repo, "manifests", d)
		return status
	})
	app.ServeHTTP(w, r)
}

func isNotFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf)
}

func (s *Server) addReferrer(ctx context.Context, repo string, subject digest.Digest, desc v1.Descriptor) error {
	b, err := json.Marshal(desc)
	if err != nil {
		return err
	}
	return s.driver.PutContent(ctx, referrerFile(repo, subject, desc.Digest), b)
}

// defaultReferrersPage is how many descriptors one referrers response holds unless
// Config.ReferrersPageSize says otherwise; a client follows the Link header for the rest.
const defaultReferrersPage = 1000

// Referrers lists the manifests in repo whose subject is subject, optionally only those
// of one artifact type.
func (s *Server) Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string) ([]v1.Descriptor, error) {
	descs, _, err := s.referrersPage(ctx, repo, subject, artifactType, "", -1)
	return descs, err
}

// referrersPage lists at most n (n < 0: all) referrers of subject after the referrer
// digest last (in the index's order, "": from the start), and reports whether more follow.
func (s *Server) referrersPage(ctx context.Context, repo string, subject digest.Digest, artifactType string, last digest.Digest, n int) ([]v1.Descriptor, bool, error) {
	out := []v1.Descriptor{}
	more := false
	after := ""
	if last != "" {
		after = referrerFile(repo, subject, last)
	}
	err := walkReferrers(ctx, s.driver, repo, subject, after, func(desc v1.Descriptor) bool {
		if artifactType != "" && desc.ArtifactType != artifactType {
			return true
		}
		if n >= 0 && len(out) == n {
			more = true
			return false
		}
		out = append(out, desc)
		return true
	})
	return out, more, err
}

// listReferrers reads the referrers index of subject in repo.
func listReferrers(ctx context.Context, d storagedriver.StorageDriver, repo string, subject digest.Digest) ([]v1.Descriptor, error) {
	out := []v1.Descriptor{}
	err := walkReferrers(ctx, d, repo, subject, "", func(desc v1.Descriptor) bool {
		out = append(out, desc)
		return true
	})
	return out, err
}

// walkReferrers calls fn with each referrer of subject in repo whose index entry sorts
// after the entry after ("": all), in order, until fn returns false. Entries whose
// manifest has gone are skipped and removed.
func walkReferrers(ctx context.Context, d storagedriver.StorageDriver, repo string, subject digest.Digest, after string, fn func(v1.Descriptor) bool) error {
	files, err := d.List(ctx, referrerDir(repo, subject))
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	sort.Strings(files)
	for _, f := range files[sort.SearchStrings(files, after):] {
		if f <= after {
			continue
		}
		b, err := d.GetContent(ctx, f)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return err
		}
		var desc v1.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil || desc.Digest.Validate() != nil {
			continue
		}
		if _, err := d.Stat(ctx, revisionLink(repo, desc.Digest)); err != nil {
			if isNotFound(err) { // the manifest went away without us: heal the index
				_ = d.Delete(ctx, f)
				continue
			}
			return err
		}
		if !fn(desc) {
			return nil
		}
	}
	return nil
}

// serveReferrers answers GET /v2/<name>/referrers/<digest> with an image index; an empty
// one when nothing refers to the digest (never 404).
func (s *Server) serveReferrers(w http.ResponseWriter, r *http.Request, repo, ref string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the operation is unsupported", nil)
		return
	}
	if _, err := reference.WithName(repo); err != nil {
		writeError(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name", map[string]string{"name": repo})
		return
	}
	subject, err := digest.Parse(ref)
	if err != nil {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content", map[string]string{"digest": ref, "reason": err.Error()})
		return
	}
	q := r.URL.Query()
	artifactType := q.Get("artifactType")
	// Pages: n (at most the configured page size) and last, as for tags and the catalog;
	// the spec leaves the next page's URL to the registry.
	n := s.referrersPageSize()
	if v := q.Get("n"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 0 {
			writeError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "invalid number of results requested", map[string]string{"n": v})
			return
		}
		n = min(n, k)
	}
	var last digest.Digest
	if v := q.Get("last"); v != "" {
		if last, err = digest.Parse(v); err != nil {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content", map[string]string{"digest": v, "reason": err.Error()})
			return
		}
	}
	descs, more, err := s.referrersPage(r.Context(), repo, subject, artifactType, last, n)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", "listing referrers: "+err.Error(), nil)
		return
	}
	if more && len(descs) > 0 {
		next := url.Values{"n": {strconv.Itoa(n)}, "last": {descs[len(descs)-1].Digest.String()}}
		if artifactType != "" {
			next.Set("artifactType", artifactType)
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
	}
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	body, err := json.Marshal(idx)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
		return
	}
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", v1.MediaTypeImageIndex)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

func (s *Server) referrersPageSize() int {
	if s.cfg.ReferrersPageSize > 0 {
		return s.cfg.ReferrersPageSize
	}
	return defaultReferrersPage
}
