package server

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// repository paths as distribution routes them (names may contain slashes)
var (
	manifestPath    = newPathPattern("/manifests/", `^/v2/(.+)/manifests/([^/]+)$`)
	referrersPath   = newPathPattern("/referrers/", `^/v2/(.+)/referrers/([^/]*)$`)
	uploadStartPath = newPathPattern("/blobs/uploads", `^/v2/(.+)/blobs/uploads/?$`)
	uploadPath      = newPathPattern("/blobs/uploads/", `^/v2/(.+)/blobs/uploads/([^/]*)$`)
	blobPath        = newPathPattern("/blobs/", `^/v2/(.+)/blobs/([^/]*)$`)
	tagsPath        = newPathPattern("/tags/list", `^/v2/(.+)/tags/list$`)
)

// validTag reports whether t is a tag as distribution defines it: [\w][\w.-]{0,127}.
// Loops, not regexps: compiled at init, the {0,127} repetitions cost every sealos process
// a quarter of a megabyte.
func validTag(t string) bool {
	if len(t) == 0 || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !isWord(c) && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validUploadID reports whether id could be an upload session ID: [A-Za-z0-9_-]{1,128}.
func validUploadID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isWord(c) && c != '-' {
			return false
		}
	}
	return true
}

func isWord(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// pathPattern is a route's regexp with a literal that every path it matches contains.
// A request is tried against several routes, and the regexps' (.+) backtracks: they
// cost ~10% of the hub's CPU serving a pull. The substring search turns most of them
// away first.
type pathPattern struct {
	lit string
	re  *regexp.Regexp
}

func newPathPattern(lit, expr string) pathPattern {
	if !strings.Contains(expr, lit) {
		panic("route " + expr + " does not contain " + lit)
	}
	return pathPattern{lit: lit, re: regexp.MustCompile(expr)}
}

func (p pathPattern) FindStringSubmatch(s string) []string {
	if !strings.Contains(s, p.lit) {
		return nil
	}
	return p.re.FindStringSubmatch(s)
}

func (p pathPattern) MatchString(s string) bool {
	return strings.Contains(s, p.lit) && p.re.MatchString(s)
}

// allManifestTypes is the Accept header given to requests that name none.
var allManifestTypes = strings.Join([]string{
	v1.MediaTypeImageManifest, v1.MediaTypeImageIndex,
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// validRoute answers NAME_INVALID and TAG_INVALID for requests distribution's router
// would not even match (it answers a bare 404 page to those), and for list pages that
// start after something no list can hold.
func (s *Server) validRoute(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	if p == "/v2/_catalog" {
		return s.validLast(w, r, "")
	}
	var name, ref string
	isManifest, isTags := false, false
	if m := manifestPath.FindStringSubmatch(p); m != nil {
		name, ref, isManifest = m[1], m[2], true
	} else if m := uploadPath.FindStringSubmatch(p); m != nil {
		name = m[1]
		if m[2] != "" && !validUploadID(m[2]) {
			// no upload has such an id (distribution's are UUIDs); it would become a
			// storage path ("..", or characters the driver refuses with a 500)
			writeError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", map[string]string{"id": m[2]})
			return false
		}
	} else if m := blobPath.FindStringSubmatch(p); m != nil {
		name = m[1]
	} else if m := tagsPath.FindStringSubmatch(p); m != nil {
		name, isTags = m[1], true
	} else if m := referrersPath.FindStringSubmatch(p); m != nil {
		name = m[1]
	} else {
		return true
	}
	if _, err := reference.WithName(name); err != nil {
		writeError(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name", map[string]string{"name": name, "reason": err.Error()})
		return false
	}
	if isTags {
		return s.validLast(w, r, name)
	}
	if isManifest && !strings.Contains(ref, ":") && !validTag(ref) {
		if r.Method == http.MethodPut {
			writeError(w, http.StatusBadRequest, "TAG_INVALID", "manifest tag did not match URI", map[string]string{"tag": ref})
		} else {
			// no manifest can have such a tag: a lookup simply finds nothing
			writeError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown", map[string]string{"tag": ref})
		}
		return false
	}
	if isManifest && strings.Contains(ref, ":") {
		if _, err := digest.Parse(ref); err != nil {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content", map[string]string{"digest": ref, "reason": err.Error()})
			return false
		}
	}
	return true
}

// validLast checks the last parameter of a catalog page (repo "") or of repo's tag list:
// distribution builds a storage path from it, so a value that is no repository name or
// tag gets an answer that makes no sense (all or nothing) or, in memory, a 500. Clients
// send the last entry of the previous page, which is always valid. A tag list after
// last of a repository that does not exist is NAME_UNKNOWN, as without last
// (distribution answers an empty list).
func (s *Server) validLast(w http.ResponseWriter, r *http.Request, repo string) bool {
	last := r.URL.Query().Get("last")
	switch {
	case last == "":
		return true
	case repo == "":
		if _, err := reference.WithName(last); err != nil {
			writeError(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name", map[string]string{"last": last, "reason": err.Error()})
			return false
		}
	case !validTag(last):
		writeError(w, http.StatusBadRequest, "TAG_INVALID", "invalid tag", map[string]string{"last": last})
		return false
	default:
		if _, err := s.driver.Stat(r.Context(), path.Join(repoPath(repo), "_manifests")); isNotFound(err) {
			writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry", map[string]string{"name": repo})
			return false
		}
	}
	return true
}

// singlePostUpload serves the spec's one-request upload, POST .../blobs/uploads/?digest=
// with the blob as body, which distribution v3 answers with a session only: it opens the
// session and completes it with a PUT, inside the hub.
func (s *Server) singlePostUpload(app *handlers.App, w http.ResponseWriter, r *http.Request) {
	post := r.Clone(r.Context())
	post.Body = http.NoBody
	post.ContentLength = 0
	post.Header.Del("Content-Length")
	q := post.URL.Query()
	q.Del("digest")
	post.URL.RawQuery = q.Encode()
	post.RequestURI = post.URL.RequestURI()
	rec := httptest.NewRecorder()
	app.ServeHTTP(rec, post)
	if rec.Code != http.StatusAccepted {
		copyResponse(w, rec)
		return
	}
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", "upload location: "+err.Error(), nil)
		return
	}
	put := r.Clone(r.Context())
	put.Method = http.MethodPut
	lq := loc.Query()
	lq.Set("digest", r.URL.Query().Get("digest"))
	put.URL = &url.URL{Path: loc.Path, RawQuery: lq.Encode()}
	put.RequestURI = put.URL.RequestURI()
	put.Body = r.Body
	put.Header.Del("Content-Range")
	if put.Header.Get("Content-Type") == "" {
		put.Header.Set("Content-Type", "application/octet-stream")
	}
	app.ServeHTTP(w, put)
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = io.Copy(w, rec.Body)
}

// v2Manifests are the media types distribution parses as schema 2 manifests and indexes.
var v2Manifests = map[string]bool{
	v1.MediaTypeImageManifest: true, v1.MediaTypeImageIndex: true,
	"application/vnd.docker.distribution.manifest.v2+json":      true,
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
}

// manifestRefs are the fields of a manifest or an index that name other content.
type manifestRefs struct {
	SchemaVersion *int            `json:"schemaVersion"`
	Config        *v1.Descriptor  `json:"config"`
	Layers        []v1.Descriptor `json:"layers"`
	Manifests     []v1.Descriptor `json:"manifests"`
	Subject       *v1.Descriptor  `json:"subject"`
}

// blobs are the config and the layers.
func (m manifestRefs) blobs() []v1.Descriptor {
	if m.Config == nil {
		return m.Layers
	}
	return append([]v1.Descriptor{*m.Config}, m.Layers...)
}

// badDescriptor describes the first descriptor whose digest is malformed or whose size is
// negative; nil when there is none.
func (m manifestRefs) badDescriptor() map[string]any {
	refs := slices.Concat(m.blobs(), m.Manifests)
	if m.Subject != nil {
		refs = append(refs, *m.Subject)
	}
	for _, d := range refs {
		if err := d.Digest.Validate(); err != nil {
			return map[string]any{"digest": d.Digest, "reason": "invalid digest: " + err.Error()}
		}
		if d.Size < 0 {
			return map[string]any{"digest": d.Digest, "size": d.Size, "reason": "negative size"}
		}
	}
	return nil
}

// checkManifest refuses, with MANIFEST_INVALID, what distribution v3 would either accept
// or answer with a 500: a schema 2 manifest or index whose schemaVersion is not 2, a
// descriptor (config, layer, child manifest, subject) whose digest is malformed or whose
// size is negative, and a config or layer descriptor whose size is not the stored blob's
// (distribution checks presence only). An index whose child manifests are not in the
// repository gets MANIFEST_BLOB_UNKNOWN, as from stock distribution, unless sparse
// manifests are allowed (Config.AllowSparseIndex) or a distribution configuration says
// how indexes are validated. It returns false after answering, and sparse when the
// manifest names content the repository lacks and sparse manifests are allowed: the
// App would refuse it, so the hub stores it itself (putSparse).
func (s *Server) checkManifest(w http.ResponseWriter, r *http.Request, repo string, body []byte) (ok, sparse bool) {
	var m manifestRefs
	if json.Unmarshal(body, &m) != nil {
		return true, false // distribution reports the syntax error
	}
	invalid := func(detail map[string]any) (bool, bool) {
		writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", "manifest invalid", detail)
		return false, false
	}
	// media types are case-insensitive, as distribution matches them
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); v2Manifests[ct] &&
		(m.SchemaVersion == nil || *m.SchemaVersion != 2) {
		return invalid(map[string]any{"reason": "schemaVersion must be 2"})
	}
	if bad := m.badDescriptor(); bad != nil {
		return invalid(bad)
	}
	ctx := r.Context()
	var missingBlob bool
	for _, d := range m.blobs() {
		if len(d.URLs) > 0 {
			continue
		}
		stored := d.Digest
		if stored.Algorithm() != digest.Canonical { // an alias names the sha256 of the data
			if c, ok := resolveLink(ctx, s.driver, blobLink(repo, stored)); ok {
				stored = c
			}
		}
		fi, err := s.driver.Stat(ctx, blobData(stored))
		if err != nil {
			missingBlob = true
			continue // missing: distribution answers MANIFEST_BLOB_UNKNOWN
		}
		if fi.Size() != d.Size {
			return invalid(map[string]any{"digest": d.Digest, "size": d.Size, "stored": fi.Size(), "reason": "descriptor size does not match the blob"})
		}
		if s.cfg.AllowSparseIndex {
			if _, err := s.driver.Stat(ctx, blobLink(repo, d.Digest)); err != nil {
				missingBlob = true // stored, but not in this repository
			}
		}
	}
	for _, d := range m.Manifests {
		if _, err := s.driver.Stat(ctx, revisionLink(repo, d.Digest)); err == nil {
			continue
		}
		if s.cfg.AllowSparseIndex {
			return true, true
		}
		if s.checksIndexes() {
			writeError(w, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry", map[string]any{"digest": d.Digest})
			return false, false
		}
	}
	return true, missingBlob && s.cfg.AllowSparseIndex
}

// checksIndexes tells whether the hub refuses an index whose child manifests are not in
// the repository: yes unless sparse manifests are allowed or the distribution
// configuration chose its own index validation (validation.manifests.indexes).
func (s *Server) checksIndexes() bool {
	if s.cfg.AllowSparseIndex {
		return false
	}
	return s.cfg.Distribution == nil || s.cfg.Distribution.Validation.Manifests.Indexes.Platforms == ""
}
