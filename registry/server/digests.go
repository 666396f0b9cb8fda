package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"

	"github.com/distribution/distribution/v3/registry/handlers"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Digests of other algorithms than sha256 (the spec registers sha512 too). Distribution
// stores every blob and manifest once, under its sha256, and links the digest a client
// used to it as an alias (linkBlob's aliases, a link file holding the sha256). Around that
// it leaves gaps that the hub closes here, keeping its storage as it is:
//   - uploads, blob GET/HEAD and mounts answer with the sha256 in Docker-Content-Digest
//     and Location, where a client checks for the digest it named (answerAs);
//   - a mount by alias links the alias to itself, a name for content never stored under
//     it: the mounted blob then answers 500 "unknown blob" (mountAlias);
//   - a manifest PUT by alias is compared with the body's sha256 and refused (putManifest
//     stores it under its sha256 and adds the alias);
//   - deleting one name of a blob or manifest leaves its other names serving it
//     (dropAliases); gc marks what an alias names (see collect).

// aliasAlgorithms are the algorithms other than sha256 that an alias can be stored under.
var aliasAlgorithms = []digest.Algorithm{digest.SHA384, digest.SHA512}

// alias parses ref as a digest of another algorithm than sha256.
func alias(ref string) (digest.Digest, bool) {
	d, err := digest.Parse(ref)
	if err != nil || d.Algorithm() == digest.Canonical {
		return "", false
	}
	return d, true
}

// resolveLink reads the sha256 a link file names.
func resolveLink(ctx context.Context, d storagedriver.StorageDriver, p string) (digest.Digest, bool) {
	b, err := d.GetContent(ctx, p)
	if err != nil {
		return "", false
	}
	c, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil || c.Algorithm() != digest.Canonical {
		return "", false
	}
	return c, true
}

// answerAs makes a successful answer name d, the digest the client used, where
// distribution names the sha256 it stored the content under. commit, when set, runs
// before a 201 goes out (a failure turns it into a 500).
func (w *logWriter) answerAs(d digest.Digest, commit func() error) {
	w.onWrite(func(status int) int {
		h := w.Header()
		if status >= 200 && status < 300 {
			if c := h.Get("Docker-Content-Digest"); c != "" && c != d.String() {
				h.Set("Docker-Content-Digest", d.String())
				if loc := h.Get("Location"); loc != "" {
					h.Set("Location", strings.Replace(loc, c, d.String(), 1))
				}
				if h.Get("Etag") != "" {
					h.Set("Etag", `"`+d.String()+`"`)
				}
			}
		}
		if status == http.StatusCreated && commit != nil {
			if err := commit(); err != nil {
				slog.Error("registry: linking digest", "digest", d, "error", err)
				h.Del("Location")
				h.Del("Docker-Content-Digest")
				return http.StatusInternalServerError
			}
		}
		return status
	})
}

// mountAlias serves POST .../blobs/uploads/?mount=<alias>&from=<repo>: distribution mounts
// the sha256 the source repository's alias names, and the hub adds the alias to the target.
// A source without the alias gets distribution's answer (an upload session).
func (s *Server) mountAlias(app *handlers.App, w *logWriter, r *http.Request, repo string, d digest.Digest) {
	ctx := r.Context()
	var c digest.Digest
	if from := r.URL.Query().Get("from"); from != "" {
		if _, err := reference.WithName(from); err == nil {
			c, _ = resolveLink(ctx, s.driver, blobLink(from, d))
		}
	}
	if c == "" {
		w.answerAs(d, nil)
		app.ServeHTTP(w, r)
		return
	}
	q := r.URL.Query()
	q.Set("mount", c.String())
	r.URL.RawQuery = q.Encode()
	r.RequestURI = r.URL.RequestURI()
	w.answerAs(d, func() error { return s.driver.PutContent(ctx, blobLink(repo, d), []byte(c)) })
	app.ServeHTTP(w, r)
}

// withRef is r for the same repository and kind ("blobs", "manifests") with ref instead.
func withRef(r *http.Request, repo, kind, ref string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.URL = &url.URL{Path: "/v2/" + repo + "/" + kind + "/" + ref, RawQuery: r.URL.RawQuery}
	r2.RequestURI = r2.URL.RequestURI()
	return r2
}

// deleteBlob deletes a repository's blob under every name it has: a DELETE of one name,
// sha256 or alias, is a DELETE of the content.
func (s *Server) deleteBlob(app *handlers.App, w *logWriter, r *http.Request, repo string, d digest.Digest) {
	if d.Algorithm() != digest.Canonical {
		if c, ok := resolveLink(r.Context(), s.driver, blobLink(repo, d)); ok {
			r, d = withRef(r, repo, "blobs", c.String()), c
		}
	}
	w.onWrite(func(status int) int {
		if status == http.StatusAccepted {
			s.dropAliases(r.Context(), app, repo, "blobs", d)
		}
		return status
	})
	app.ServeHTTP(w, r)
}

// listAliases maps the aliases under a repository's layersDir or revisionsDir to the
// sha256 each names.
func listAliases(ctx context.Context, d storagedriver.StorageDriver, repo, dir string) (map[digest.Digest]digest.Digest, error) {
	out := map[digest.Digest]digest.Digest{}
	for _, alg := range aliasAlgorithms {
		entries, err := d.List(ctx, path.Join(repoPath(repo), dir, alg.String()))
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if c, ok := resolveLink(ctx, d, path.Join(e, "link")); ok {
				out[digest.NewDigestFromEncoded(alg, path.Base(e))] = c
			}
		}
	}
	return out, nil
}

// dropAliases deletes, through the App (which also forgets them in its caches), the
// aliases in repo that name the sha256 c of a blob or manifest (kind "blobs" or
// "manifests") just deleted.
func (s *Server) dropAliases(ctx context.Context, app *handlers.App, repo, kind string, c digest.Digest) {
	dir := layersDir
	if kind == "manifests" {
		dir = revisionsDir
	}
	aliases, err := listAliases(ctx, s.driver, repo, dir)
	if err != nil {
		slog.Warn("registry: listing aliases", "repository", repo, "error", err)
	}
	for a, t := range aliases {
		if t != c {
			continue
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodDelete, "/v2/"+repo+"/"+kind+"/"+a.String(), nil)
		rec := httptest.NewRecorder()
		app.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted && rec.Code != http.StatusNotFound {
			slog.Warn("registry: deleting alias", "repository", repo, "digest", a, "status", rec.Code, "body", rec.Body.String())
		}
	}
}
