package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// reader reads the hub through its own API handler, in process: the pages see exactly
// what a client would (mirror namespaces, aliases, referrers), from the same storage.
// What is addressed by digest never changes, so it is cached for good (bounded); the
// catalog is cached briefly, so typing in the search box does not list the storage on
// every key.
type reader struct {
	api http.Handler

	mu        sync.Mutex
	catalog   []string
	catalogAt time.Time
	manifests map[string]*manifest // by digest
	configs   map[string]*v1.ConfigFile
	tagged    map[string]taggedAt // "repo:tag" -> digest, as last read
}

// taggedAt is what a tag named when it was read.
type taggedAt struct {
	digest string
	at     time.Time
}

// tagTTL is how long a tag is taken to name the digest it named: within it, a page that
// shows the tag costs a map lookup, so a repository page costs its tag list. A tag moved
// in the meantime shows its new digest at most this much later.
const tagTTL = 5 * time.Second

// catalogTTL is how long a listed catalog is reused.
const catalogTTL = 3 * time.Second

// cacheEntries bounds each digest cache; past it the cache starts again (a hub's pages
// look at a working set far smaller than this).
const cacheEntries = 50000

func newReader(api http.Handler) *reader {
	return &reader{api: api, manifests: map[string]*manifest{}, configs: map[string]*v1.ConfigFile{}, tagged: map[string]taggedAt{}}
}

// errNotFound: the API answered 404.
var errNotFound = errors.New("not found")

// get runs one GET (or HEAD) against the API and returns the recorded response.
func (r *reader) get(method, path string, header http.Header) (*httptest.ResponseRecorder, error) {
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	r.api.ServeHTTP(rec, req)
	switch {
	case rec.Code == http.StatusNotFound:
		return rec, errNotFound
	case rec.Code >= 300:
		return rec, fmt.Errorf("%s %s: %d %s", method, path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	return rec, nil
}

// repositories lists every repository of the hub, sorted.
func (r *reader) repositories() ([]string, error) {
	r.mu.Lock()
	if r.catalog != nil && time.Since(r.catalogAt) < catalogTTL {
		c := r.catalog
		r.mu.Unlock()
		return c, nil
	}
	r.mu.Unlock()
	var all []string
	last := ""
	for {
		q := url.Values{"n": {"1000"}}
		if last != "" {
			q.Set("last", last)
		}
		rec, err := r.get(http.MethodGet, "/v2/_catalog?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		all = append(all, page.Repositories...)
		if len(page.Repositories) == 0 || rec.Header().Get("Link") == "" {
			break
		}
		last = page.Repositories[len(page.Repositories)-1]
	}
	sort.Strings(all)
	r.mu.Lock()
	r.catalog, r.catalogAt = all, time.Now()
	r.mu.Unlock()
	return all, nil
}

// tags lists the tags of repo, sorted.
func (r *reader) tags(repo string) ([]string, error) {
	rec, err := r.get(http.MethodGet, "/v2/"+repo+"/tags/list", nil)
	if err != nil {
		return nil, err
	}
	var tl struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &tl); err != nil {
		return nil, fmt.Errorf("tags of %s: %w", repo, err)
	}
	sort.Strings(tl.Tags)
	return tl.Tags, nil
}

// manifest is a manifest or index as the hub stores it.
type manifest struct {
	Digest    string
	MediaType types.MediaType
	Size      int64
	Raw       []byte
	Image     *v1.Manifest      // for an image
	Index     *v1.IndexManifest // for an index
}

// Annotations are the manifest's or index's own.
func (m *manifest) Annotations() map[string]string {
	if m.Image != nil {
		return m.Image.Annotations
	}
	if m.Index != nil {
		return m.Index.Annotations
	}
	return nil
}

const acceptManifests = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

// manifest reads repo's manifest ref (a tag or a digest).
func (r *reader) manifest(repo, ref string) (*manifest, error) {
	if strings.Contains(ref, ":") {
		if m := r.cachedManifest(ref); m != nil {
			return m, nil
		}
	} else {
		r.mu.Lock()
		t, ok := r.tagged[repo+":"+ref]
		r.mu.Unlock()
		if ok && time.Since(t.at) < tagTTL {
			if m := r.cachedManifest(t.digest); m != nil {
				return m, nil
			}
		}
	}
	rec, err := r.get(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {acceptManifests}})
	if err != nil {
		return nil, err
	}
	dgst := rec.Header().Get("Docker-Content-Digest")
	if dgst != "" && !strings.Contains(ref, ":") {
		r.mu.Lock()
		if len(r.tagged) >= cacheEntries {
			r.tagged = map[string]taggedAt{}
		}
		r.tagged[repo+":"+ref] = taggedAt{dgst, time.Now()}
		r.mu.Unlock()
	}
	if m := r.cachedManifest(dgst); m != nil {
		return m, nil
	}
	m := &manifest{Digest: dgst, MediaType: types.MediaType(rec.Header().Get("Content-Type")), Raw: rec.Body.Bytes(), Size: int64(rec.Body.Len())}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(m.Raw, &probe); err != nil {
		return nil, fmt.Errorf("manifest %s@%s: %w", repo, ref, err)
	}
	if probe.MediaType != "" {
		m.MediaType = probe.MediaType
	}
	if m.MediaType.IsIndex() || (m.MediaType == "" && probe.Manifests != nil) {
		if m.Index, err = v1.ParseIndexManifest(bytes.NewReader(m.Raw)); err != nil {
			return nil, fmt.Errorf("index %s@%s: %w", repo, ref, err)
		}
	} else if m.Image, err = v1.ParseManifest(bytes.NewReader(m.Raw)); err != nil {
		return nil, fmt.Errorf("manifest %s@%s: %w", repo, ref, err)
	}
	if dgst != "" {
		r.mu.Lock()
		if len(r.manifests) >= cacheEntries {
			r.manifests = map[string]*manifest{}
		}
		r.manifests[dgst] = m
		r.mu.Unlock()
	}
	return m, nil
}

func (r *reader) cachedManifest(dgst string) *manifest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.manifests[dgst]
}

// maxConfig bounds the config blobs read (a config is a few KiB; anything else is not one).
const maxConfig = 4 << 20

// config reads the image config a manifest names.
func (r *reader) config(repo string, m *manifest) (*v1.ConfigFile, error) {
	if m.Image == nil {
		return nil, errors.New("not an image")
	}
	d := m.Image.Config.Digest.String()
	r.mu.Lock()
	cf := r.configs[d]
	r.mu.Unlock()
	if cf != nil {
		return cf, nil
	}
	if m.Image.Config.Size > maxConfig {
		return nil, fmt.Errorf("config %s is %d bytes: not read", d, m.Image.Config.Size)
	}
	rec, err := r.get(http.MethodGet, "/v2/"+repo+"/blobs/"+d, nil)
	if err != nil {
		return nil, err
	}
	cf, err = v1.ParseConfigFile(io.LimitReader(rec.Body, maxConfig))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", d, err)
	}
	r.mu.Lock()
	if len(r.configs) >= cacheEntries {
		r.configs = map[string]*v1.ConfigFile{}
	}
	r.configs[d] = cf
	r.mu.Unlock()
	return cf, nil
}

// referrers lists the manifests that refer to repo@dgst (signatures, SBOMs, attestations).
func (r *reader) referrers(repo, dgst string) ([]v1.Descriptor, error) {
	rec, err := r.get(http.MethodGet, "/v2/"+repo+"/referrers/"+dgst, nil)
	if errors.Is(err, errNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(rec.Body)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s@%s: %w", repo, dgst, err)
	}
	return idx.Manifests, nil
}

// exists reports whether repo has the manifest ref.
func (r *reader) exists(repo, ref string) bool {
	_, err := r.get(http.MethodHead, "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {acceptManifests}})
	return err == nil
}
