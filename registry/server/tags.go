package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// What distribution v3.1.2 lacks around manifest PUTs, and the hub adds here:
//   - tag parameters (distribution-spec 1.1): PUT /v2/<name>/manifests/<digest>?tag=a&tag=b
//     stores the manifest and points each tag at it, answering one OCI-Tag header per tag;
//   - the digest a tag was pushed with: a manifest pushed by a sha512 digest with tag
//     parameters is stored under its sha256, and GET/HEAD by the tag answer with the
//     sha512 in Docker-Content-Digest, as the client named it (tagAliasFile);
//   - sparse manifests (Config.AllowSparseIndex): an index whose child manifests, or an
//     image whose blobs, are not in the repository, stored as distribution's proxy stores
//     what it has not fetched yet (putSparse).

// maxTagParams bounds the tags one PUT may create.
const maxTagParams = 100

// tagParams reads and checks the tag query parameters of a manifest PUT; it answers
// TAG_INVALID and returns false when one is not a valid tag.
func tagParams(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	if r.URL.RawQuery == "" {
		return nil, true
	}
	tags := r.URL.Query()["tag"]
	if len(tags) > maxTagParams {
		writeError(w, http.StatusBadRequest, "TAG_INVALID", "invalid tag", map[string]any{"reason": fmt.Sprintf("at most %d tag parameters", maxTagParams)})
		return nil, false
	}
	for _, t := range tags {
		if !validTag(t) {
			writeError(w, http.StatusBadRequest, "TAG_INVALID", "invalid tag", map[string]string{"tag": quoteBounded(t)})
			return nil, false
		}
	}
	return tags, true
}

// quoteBounded is at most the first 128 bytes of user input, for error details.
func quoteBounded(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

// tagOnCreate makes a successful manifest PUT point the tag parameters at the manifest
// (answering an OCI-Tag header for each) and records, for them and for a tag in the
// path, the digest the client named when it is not the sha256.
func (s *Server) tagOnCreate(w *logWriter, r *http.Request, repo, ref string, refAlias digest.Digest, tags []string, body []byte) {
	all := tags
	if !strings.Contains(ref, ":") {
		all = append([]string{ref}, tags...)
	}
	if len(all) == 0 {
		return
	}
	ctx := r.Context()
	w.onWrite(func(status int) int {
		if status != http.StatusCreated {
			return status
		}
		desc := v1.Descriptor{MediaType: r.Header.Get("Content-Type"), Digest: digest.FromBytes(body), Size: int64(len(body))}
		for _, t := range tags {
			if err := s.tagManifest(ctx, repo, t, desc); err != nil {
				slog.Error("registry: tagging manifest", "repository", repo, "tag", t, "error", err)
				return http.StatusInternalServerError
			}
			w.Header().Add("OCI-Tag", t)
		}
		for _, t := range all {
			if err := s.setTagAlias(ctx, repo, t, refAlias); err != nil {
				slog.Error("registry: recording tag digest", "repository", repo, "tag", t, "error", err)
				return http.StatusInternalServerError
			}
		}
		return status
	})
}

// repository opens repo in distribution's storage, on the hub's driver, for what the App
// cannot do: tags by parameter and sparse manifests.
func (s *Server) repository(ctx context.Context, repo string) (distribution.Repository, error) {
	reg, err := storage.NewRegistry(ctx, s.driver)
	if err != nil {
		return nil, err
	}
	named, err := reference.WithName(repo)
	if err != nil {
		return nil, err
	}
	return reg.Repository(ctx, named)
}

// tagManifest points tag at the manifest desc (already stored in repo).
func (s *Server) tagManifest(ctx context.Context, repo, tag string, desc v1.Descriptor) error {
	rep, err := s.repository(ctx, repo)
	if err != nil {
		return err
	}
	return rep.Tags(ctx).Tag(ctx, tag, desc)
}

// tagAliasFile records the digest other than sha256 that a tag was last pushed with:
// /sealos/v1/tagdigests/<repository>/_tags/<tag> (a repository name never has a
// component starting with "_"). It holds the alias digest; absent for a sha256 push.
func tagAliasFile(repo, tag string) string {
	return path.Join("/sealos/v1/tagdigests", repo, "_tags", tag)
}

func tagCurrentLink(repo, tag string) string {
	return path.Join(repoPath(repo), "_manifests/tags", tag, "current/link")
}

// setTagAlias records that tag was pushed as d ("" or a sha256: forget any alias).
func (s *Server) setTagAlias(ctx context.Context, repo, tag string, d digest.Digest) error {
	if d == "" || d.Algorithm() == digest.Canonical {
		if err := s.driver.Delete(ctx, tagAliasFile(repo, tag)); err != nil && !isNotFound(err) {
			return err
		}
		return nil
	}
	return s.driver.PutContent(ctx, tagAliasFile(repo, tag), []byte(d))
}

// answerTagAlias makes a GET or HEAD of a manifest by tag answer with the digest the tag
// was pushed with, when that was not the sha256 and the tag still names that manifest.
func (s *Server) answerTagAlias(w *logWriter, r *http.Request, repo, ref string) {
	if strings.Contains(ref, ":") {
		return
	}
	ctx := r.Context()
	b, err := s.driver.GetContent(ctx, tagAliasFile(repo, ref))
	if err != nil {
		return
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil || d.Algorithm() == digest.Canonical {
		return
	}
	current, ok := resolveLink(ctx, s.driver, tagCurrentLink(repo, ref))
	if !ok {
		return
	}
	if c, ok := resolveLink(ctx, s.driver, revisionLink(repo, d)); ok && c == current {
		w.answerAs(d, nil)
	}
}

// putSparse stores a manifest that names content the repository lacks (allowed by
// Config.AllowSparseIndex), without the App's check that everything it names is there,
// and answers as the App does. r is the PUT by tag or by sha256 digest.
func (s *Server) putSparse(w *logWriter, r *http.Request, repo string, body []byte) {
	ctx := r.Context()
	m := manifestPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry", nil)
		return
	}
	ref := m[2]
	manifest, desc, err := distribution.UnmarshalManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", "manifest invalid", map[string]string{"reason": err.Error()})
		return
	}
	if strings.Contains(ref, ":") && ref != desc.Digest.String() {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content", map[string]string{"digest": ref})
		return
	}
	rep, err := s.repository(ctx, repo)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", "opening repository", nil)
		return
	}
	ms, err := rep.Manifests(ctx, storage.SkipLayerVerification())
	if err == nil {
		_, err = ms.Put(ctx, manifest)
	}
	if err == nil && !strings.Contains(ref, ":") {
		err = rep.Tags(ctx).Tag(ctx, ref, desc)
	}
	if err != nil {
		slog.Error("registry: storing sparse manifest", "repository", repo, "error", err)
		writeError(w, http.StatusInternalServerError, "UNKNOWN", "storing manifest failed", nil)
		return
	}
	w.Header().Set("Location", "/v2/"+repo+"/manifests/"+desc.Digest.String())
	w.Header().Set("Docker-Content-Digest", desc.Digest.String())
	w.Header().Set("Content-Length", "0")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(http.StatusCreated)
}
