package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/registry/server"
)

// seed pushes images to a hub and returns their digests by "repo:tag".
type seeded map[string]v1.Hash

func seedImage(t *testing.T, host, ref string, img v1.Image) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(host + "/" + ref)
	require.NoError(t, err)
	require.NoError(t, remote.Write(r, img))
	d, err := img.Digest()
	require.NoError(t, err)
	return d
}

func seedIndex(t *testing.T, host, ref string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(host + "/" + ref)
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(r, idx))
	d, err := idx.Digest()
	require.NoError(t, err)
	return d
}

func randomImage(t *testing.T, size int64, layers int) v1.Image {
	t.Helper()
	img, err := random.Image(size, int64(layers))
	require.NoError(t, err)
	return img
}

// twoPlatforms is an index of the host platform and another one.
func twoPlatforms(t *testing.T) v1.ImageIndex {
	t.Helper()
	idx, err := random.Index(1024, 2, 2)
	require.NoError(t, err)
	other := "s390x"
	if runtime.GOARCH == other {
		other = "arm64"
	}
	return withPlatforms(t, idx, []v1.Platform{client.HostPlatform(), {OS: "linux", Architecture: other}})
}

// seedSource fills a hub with three repositories: app/web (v1, v2), app/db (v1) and
// base/multi (an index of two platforms, tag v1).
func seedSource(t *testing.T, host string) seeded {
	t.Helper()
	s := seeded{}
	s["app/web:v1"] = seedImage(t, host, "app/web:v1", randomImage(t, 2048, 2))
	s["app/web:v2"] = seedImage(t, host, "app/web:v2", randomImage(t, 2048, 3))
	s["app/db:v1"] = seedImage(t, host, "app/db:v1", randomImage(t, 4096, 1))
	s["base/multi:v1"] = seedIndex(t, host, "base/multi:v1", twoPlatforms(t))
	return s
}

func headDigest(t *testing.T, ref string) (v1.Hash, bool) {
	t.Helper()
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	d, err := remote.Head(r)
	if err != nil {
		return v1.Hash{}, false
	}
	return d.Digest, true
}

func TestSyncAllThenNothingChanged(t *testing.T) {
	src := startHub(t, server.Config{}, nil)
	want := seedSource(t, src)
	var dlog requestLog
	dst := startHub(t, server.Config{}, dlog.wrap)
	ctx := context.Background()

	rep, err := client.Sync(ctx, src, dst, client.SyncOptions{All: true})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	assert.Equal(t, 4, rep.Copied)
	assert.Zero(t, rep.Failed)
	assert.Positive(t, rep.Bytes)
	for ref, d := range want {
		got, ok := headDigest(t, dst+"/"+ref)
		require.True(t, ok, ref)
		assert.Equal(t, d, got, "digest of %s must not change", ref)
	}
	// every platform of the index is there
	idx, err := remote.Index(mustRef(t, src+"/base/multi:v1"))
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	for _, c := range im.Manifests {
		_, ok := headDigest(t, dst+"/base/multi@"+c.Digest.String())
		assert.True(t, ok, "child %s", c.Digest)
	}

	// nothing changed: only HEADs on the destination, one per tag, no blob moves.
	dlog.reset()
	rep, err = client.Sync(ctx, src, dst, client.SyncOptions{All: true})
	require.NoError(t, err)
	assert.Equal(t, 4, rep.Skipped)
	assert.Zero(t, rep.Copied)
	assert.Zero(t, rep.Blobs)
	assert.Zero(t, rep.Bytes)
	for _, m := range []string{"GET", "PUT", "POST", "PATCH", "DELETE"} {
		n := dlog.count(m, "/v2/")
		if m == "GET" {
			n -= dlog.count("GET", "/v2/?") // the auth ping
		}
		assert.Zero(t, n, "%s requests on the destination of an unchanged sync", m)
	}
	// one HEAD per tag, plus one per child of the index (checked, not copied).
	assert.Equal(t, 4+2, dlog.count("HEAD", "/manifests/"))
	assert.Zero(t, dlog.count("HEAD", "/blobs/"))
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	require.NoError(t, err)
	return r
}

func TestSyncFilters(t *testing.T) {
	src := startHub(t, server.Config{}, nil)
	want := seedSource(t, src)
	dst := startHub(t, server.Config{}, nil)

	rep, err := client.Sync(context.Background(), src, dst+"/mirror", client.SyncOptions{Repos: []string{"app/.*"}, Tags: "^v1$"})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	assert.Equal(t, 2, rep.Copied)
	got, ok := headDigest(t, dst+"/mirror/app/web:v1")
	require.True(t, ok)
	assert.Equal(t, want["app/web:v1"], got)
	_, ok = headDigest(t, dst+"/mirror/app/db:v1")
	assert.True(t, ok)
	_, ok = headDigest(t, dst+"/mirror/app/web:v2")
	assert.False(t, ok, "tag filtered out")
	_, ok = headDigest(t, dst+"/mirror/base/multi:v1")
	assert.False(t, ok, "repository filtered out")

	// a single repository named in the source: same name, or the repository named in dst
	rep, err = client.Sync(context.Background(), src+"/app/web", dst, client.SyncOptions{})
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Copied)
	_, ok = headDigest(t, dst+"/app/web:v2")
	assert.True(t, ok)
	rep, err = client.Sync(context.Background(), src+"/app/web", dst+"/docker.io/team/web", client.SyncOptions{})
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Copied)
	got, ok = headDigest(t, dst+"/docker.io/team/web:v1")
	require.True(t, ok)
	assert.Equal(t, want["app/web:v1"], got)
}

func TestSyncHostPlatformKeepsIndexDigest(t *testing.T) {
	src := startHub(t, server.Config{}, nil)
	want := seedSource(t, src)
	// a hub that takes an index whose other platforms' images are absent (by default it
	// refuses it, as stock distribution does, and gets the platform's image: the fallback)
	dst := startHub(t, server.Config{AllowSparseIndex: true}, nil)

	rep, err := client.Sync(context.Background(), src, dst, client.SyncOptions{Repos: []string{"base/multi"}})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	got, ok := headDigest(t, dst+"/base/multi:v1")
	require.True(t, ok)
	assert.Equal(t, want["base/multi:v1"], got, "the index is copied as it is")

	idx, err := remote.Index(mustRef(t, src+"/base/multi:v1"))
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	for _, c := range im.Manifests {
		_, ok := headDigest(t, dst+"/base/multi@"+c.Digest.String())
		assert.Equal(t, c.Platform.Satisfies(client.HostPlatform()), ok, "child %s (%s)", c.Digest, c.Platform)
	}
	// the host's image pulls by tag through the index
	img, err := remote.Image(mustRef(t, dst+"/base/multi:v1"))
	require.NoError(t, err)
	_, err = img.Layers()
	require.NoError(t, err)

	// --all later completes the index
	rep, err = client.Sync(context.Background(), src, dst, client.SyncOptions{Repos: []string{"base/multi"}, All: true})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Copied)
	for _, c := range im.Manifests {
		_, ok := headDigest(t, dst+"/base/multi@"+c.Digest.String())
		assert.True(t, ok)
	}
}

// signature is a small artifact manifest whose subject is img.
func signature(t *testing.T, subject v1.Image, artifactType string) (v1.Image, v1.Hash) {
	t.Helper()
	d, err := subject.Digest()
	require.NoError(t, err)
	mt, err := subject.MediaType()
	require.NoError(t, err)
	raw, err := subject.RawManifest()
	require.NoError(t, err)
	sig := mutate.MediaType(randomImage(t, 256, 1), types.OCIManifestSchema1)
	sig = mutate.ConfigMediaType(sig, types.MediaType(artifactType))
	sig = mutate.Subject(sig, v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}).(v1.Image)
	sd, err := sig.Digest()
	require.NoError(t, err)
	return sig, sd
}

func TestSyncReferrers(t *testing.T) {
	src := startHub(t, server.Config{}, nil)
	dst := startHub(t, server.Config{}, nil)
	img := randomImage(t, 1024, 1)
	d := seedImage(t, src, "signed/app:v1", img)
	sig, sigDigest := signature(t, img, "application/vnd.dev.cosign.artifact.sig.v1+json")
	seedImage(t, src, "signed/app@"+sigDigest.String(), sig)
	sbom, sbomDigest := signature(t, sig, "application/spdx+json") // a referrer of the referrer
	seedImage(t, src, "signed/app@"+sbomDigest.String(), sbom)

	rep, err := client.Sync(context.Background(), src, dst, client.SyncOptions{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Len(t, rep.Images, 1)
	assert.Equal(t, 2, rep.Images[0].Referrers)

	refs, err := remote.Referrers(mustRef(t, dst+"/signed/app@"+d.String()).(name.Digest))
	require.NoError(t, err)
	rm, err := refs.IndexManifest()
	require.NoError(t, err)
	require.Len(t, rm.Manifests, 1)
	assert.Equal(t, sigDigest, rm.Manifests[0].Digest)
	assert.Equal(t, "application/vnd.dev.cosign.artifact.sig.v1+json", rm.Manifests[0].ArtifactType)
	_, ok := headDigest(t, dst+"/signed/app@"+sbomDigest.String())
	assert.True(t, ok, "the referrer's own referrer comes along")

	// a signature added later is copied by the next sync, although the tag is unchanged
	sig2, sig2Digest := signature(t, img, "application/vnd.example.sig")
	seedImage(t, src, "signed/app@"+sig2Digest.String(), sig2)
	rep, err = client.Sync(context.Background(), src, dst, client.SyncOptions{})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Skipped)
	assert.Equal(t, 1, rep.Images[0].Referrers)
	_, ok = headDigest(t, dst+"/signed/app@"+sig2Digest.String())
	assert.True(t, ok)
}

// A source that lists referrers a page at a time: every page is read.
func TestSyncReferrersPaged(t *testing.T) {
	src := startHub(t, server.Config{ReferrersPageSize: 1}, nil)
	dst := startHub(t, server.Config{}, nil)
	img := randomImage(t, 1024, 1)
	d := seedImage(t, src, "paged/app:v1", img)
	want := map[v1.Hash]bool{}
	for _, at := range []string{"application/vnd.example.a", "application/vnd.example.b", "application/vnd.example.c"} {
		sig, sd := signature(t, img, at)
		seedImage(t, src, "paged/app@"+sd.String(), sig)
		want[sd] = true
	}
	rep, err := client.Sync(context.Background(), src, dst, client.SyncOptions{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Len(t, rep.Images, 1)
	assert.Equal(t, 3, rep.Images[0].Referrers)
	refs, err := remote.Referrers(mustRef(t, dst+"/paged/app@"+d.String()).(name.Digest))
	require.NoError(t, err)
	rm, err := refs.IndexManifest()
	require.NoError(t, err)
	got := map[v1.Hash]bool{}
	for _, m := range rm.Manifests {
		got[m.Digest] = true
	}
	assert.Equal(t, want, got)
}

// A source without the referrers API keeps them under the sha256-<hex> tag: the sync finds
// them there and the tag comes along.
func TestSyncReferrersFallbackTag(t *testing.T) {
	noAPI := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/referrers/") {
				http.NotFound(w, r)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	src := startHub(t, server.Config{}, noAPI)
	dst := startHub(t, server.Config{}, nil)
	img := randomImage(t, 1024, 1)
	d := seedImage(t, src, "old/app:v1", img)
	sig, sigDigest := signature(t, img, "application/vnd.example.sig")
	seedImage(t, src, "old/app@"+sigDigest.String(), sig)
	raw, err := sig.RawManifest()
	require.NoError(t, err)
	fb := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: types.OCIManifestSchema1, Digest: sigDigest, Size: int64(len(raw)), ArtifactType: "application/vnd.example.sig",
	}}}
	fbRaw, err := json.Marshal(fb)
	require.NoError(t, err)
	tag := "sha256-" + d.Hex
	require.NoError(t, remote.Put(mustRef(t, src+"/old/app:"+tag), rawManifest{fbRaw, types.OCIImageIndex}))

	rep, err := client.Sync(context.Background(), src, dst, client.SyncOptions{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Len(t, rep.Images, 1, "the fallback tag is not an image of its own")
	_, ok := headDigest(t, dst+"/old/app@"+sigDigest.String())
	assert.True(t, ok)
	_, ok = headDigest(t, dst+"/old/app:"+tag)
	assert.True(t, ok)
	refs, err := remote.Referrers(mustRef(t, dst+"/old/app@"+d.String()).(name.Digest))
	require.NoError(t, err)
	rm, err := refs.IndexManifest()
	require.NoError(t, err)
	assert.Len(t, rm.Manifests, 1, "the destination hub indexes the referrer too")
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

func TestSyncResumesAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var blobGets atomic.Int64
	stopAfter := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				if blobGets.Add(1) == 6 {
					cancel() // the sync is killed in the middle
				}
			}
			h.ServeHTTP(w, r)
		})
	}
	src := startHub(t, server.Config{}, stopAfter)
	for _, repo := range []string{"r/a", "r/b", "r/c", "r/d", "r/e", "r/f"} {
		seedImage(t, src, repo+":v1", randomImage(t, 64<<10, 3))
	}
	var dlog requestLog
	dst := startHub(t, server.Config{}, dlog.wrap)
	// one blob at a time so the cancel lands with work left
	_, err := client.Sync(ctx, src, dst, client.SyncOptions{ImageJobs: 1}, client.WithJobs(1), client.WithRetry(0, 0))
	require.ErrorIs(t, err, context.Canceled)
	uploadedFirst := dlog.count("PUT", "/blobs/uploads/")
	require.Positive(t, uploadedFirst)

	rep, err := client.Sync(context.Background(), src, dst, client.SyncOptions{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	assert.Equal(t, 6, rep.Copied+rep.Skipped)
	total := 6 * 4 // three layers and a config each
	// images finished before the cancel are skipped whole; the others move only what is missing
	assert.Equal(t, 4*rep.Copied, rep.Blobs+rep.BlobsSkipped)
	assert.Positive(t, rep.BlobsSkipped, "blobs sent before the cancel are not sent again")
	assert.LessOrEqual(t, dlog.count("PUT", "/blobs/uploads/"), total, "no blob uploaded twice")

	// the result equals the source
	rep, err = client.Sync(context.Background(), src, dst, client.SyncOptions{})
	require.NoError(t, err)
	assert.Equal(t, 6, rep.Skipped)
}

func TestSyncCollectsFailures(t *testing.T) {
	var bad atomic.Value
	bad.Store("")
	broken := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if b := bad.Load().(string); b != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+b) && r.Method == http.MethodGet {
				http.Error(w, "disk on fire", http.StatusInternalServerError)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	src := startHub(t, server.Config{}, broken)
	seedSource(t, src)
	img := randomImage(t, 1024, 1)
	seedImage(t, src, "zz/broken:v1", img)
	ls, err := img.Layers()
	require.NoError(t, err)
	ld, err := ls[0].Digest()
	require.NoError(t, err)
	bad.Store(ld.String())
	dst := startHub(t, server.Config{}, nil)

	rep, err := client.Sync(context.Background(), src, dst, client.SyncOptions{}, client.WithRetry(0, 0))
	require.NoError(t, err, "per-image failures are in the report")
	assert.Equal(t, 1, rep.Failed)
	assert.Equal(t, 4, rep.Copied)
	require.Error(t, rep.Err())
	assert.Contains(t, rep.Err().Error(), "zz/broken:v1")
	_, ok := headDigest(t, dst+"/zz/broken:v1")
	assert.False(t, ok, "a failed image leaves no tag behind")
}

func TestCopy(t *testing.T) {
	src := startHub(t, server.Config{}, nil)
	want := seedSource(t, src)
	dst := startHub(t, server.Config{}, nil)
	ctx := context.Background()

	rep, err := client.Copy(ctx, src+"/app/web:v2", dst+"/copied/web", client.SyncOptions{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	got, ok := headDigest(t, dst+"/copied/web:v2")
	require.True(t, ok)
	assert.Equal(t, want["app/web:v2"], got)

	rep, err = client.Copy(ctx, src+"/app/db@"+want["app/db:v1"].String(), dst+"/x/db:renamed", client.SyncOptions{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	got, ok = headDigest(t, dst+"/x/db:renamed")
	require.True(t, ok)
	assert.Equal(t, want["app/db:v1"], got)

	rep, err = client.Copy(ctx, src+"/base/multi:v1", dst+"/m/multi:v1", client.SyncOptions{All: true})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	assert.Equal(t, 3, rep.Images[0].Manifests)

	rep, err = client.Copy(ctx, src+"/app/web:v2", dst+"/copied/web", client.SyncOptions{})
	require.NoError(t, err)
	assert.Equal(t, client.StatusSkipped, rep.Images[0].Status)

	rep, err = client.Copy(ctx, src+"/app/web:nope", dst+"/copied/web", client.SyncOptions{})
	require.NoError(t, err)
	assert.Equal(t, client.StatusFailed, rep.Images[0].Status)
}

func TestSyncWithoutCatalog(t *testing.T) {
	noCatalog := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/_catalog" {
				http.Error(w, `{"errors":[{"code":"UNSUPPORTED","message":"no catalog"}]}`, http.StatusNotFound)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	src := startHub(t, server.Config{}, noCatalog)
	want := seedSource(t, src)
	dst := startHub(t, server.Config{}, nil)

	_, err := client.Sync(context.Background(), src, dst, client.SyncOptions{})
	require.Error(t, err, "no catalog and no repository named")
	_, err = client.Sync(context.Background(), src, dst, client.SyncOptions{Repos: []string{"app/.*"}})
	require.Error(t, err, "a pattern cannot be listed without a catalog")

	rep, err := client.Sync(context.Background(), src, dst, client.SyncOptions{Repos: []string{"app/db", "base/multi"}})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	assert.Equal(t, 2, rep.Copied)
	rep, err = client.Sync(context.Background(), src, dst, client.SyncOptions{Repos: []string{"app/db", "no/such"}})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Failed, "a named repository that does not exist fails")
	got, ok := headDigest(t, dst+"/app/db:v1")
	require.True(t, ok)
	assert.Equal(t, want["app/db:v1"], got)
}

func TestSyncToAuthenticatedHub(t *testing.T) {
	src := startHub(t, server.Config{}, nil)
	want := seedSource(t, src)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, os.WriteFile(htpasswd, []byte("sync:"+string(hash)+"\n"), 0o600))
	dst := startHub(t, server.Config{Htpasswd: htpasswd}, nil)

	rep, err := client.Sync(context.Background(), src, dst, client.SyncOptions{Repos: []string{"app/db"}}, client.WithRetry(0, 0))
	require.NoError(t, err)
	require.Error(t, rep.Err(), "no credentials")
	assert.Contains(t, rep.Images[0].Error, "401")
	rep, err = client.Sync(context.Background(), src, dst, client.SyncOptions{Repos: []string{"app/db"}},
		client.WithAuth(&authn.Basic{Username: "sync", Password: "s3cret"}))
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	assert.Equal(t, 1, rep.Copied)
	r, err := name.ParseReference(dst + "/app/db:v1")
	require.NoError(t, err)
	d, err := remote.Head(r, remote.WithAuth(&authn.Basic{Username: "sync", Password: "s3cret"}))
	require.NoError(t, err)
	assert.Equal(t, want["app/db:v1"], d.Digest)
}

// Within one registry blobs are mounted, never sent.
func TestCopyWithinOneRegistryMounts(t *testing.T) {
	var log requestLog
	hub := startHub(t, server.Config{}, log.wrap)
	want := seedSource(t, hub)
	log.reset()
	rep, err := client.Copy(context.Background(), hub+"/app/web:v2", hub+"/release/web:v2", client.SyncOptions{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	assert.Zero(t, rep.Bytes)
	assert.Zero(t, log.count("PUT", "/blobs/uploads/"))
	assert.Zero(t, log.count("GET", "/blobs/"))
	got, ok := headDigest(t, hub+"/release/web:v2")
	require.True(t, ok)
	assert.Equal(t, want["app/web:v2"], got)
}
