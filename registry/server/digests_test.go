package server

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sha512 content: blobs and manifests pushed, pulled, mounted, deleted and collected under
// sha512 digests, the hub answering with the digest the client named (digests.go).
func TestSHA512(t *testing.T) {
	for _, inMemory := range []bool{false, true} {
		name := "filesystem"
		if inMemory {
			name = "inmemory"
		}
		t.Run(name, func(t *testing.T) { testSHA512(t, inMemory) })
	}
}

func testSHA512(t *testing.T, inMemory bool) {
	srv, ts := newTestServer(t, Config{InMemory: inMemory})
	h := &hub{t: t, url: ts.URL}
	octet := map[string]string{"Content-Type": "application/octet-stream"}
	created := func(r resp, repo string, d digest.Digest) {
		t.Helper()
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		assert.Equal(t, d.String(), r.header.Get("Docker-Content-Digest"))
		assert.Equal(t, "/v2/"+repo+"/blobs/"+d.String(), locPath(t, r))
	}

	// single POST, POST+PUT, chunked
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cfgD := digest.SHA512.FromBytes(cfg)
	created(h.do("POST", "/v2/a/blobs/uploads/?digest="+cfgD.String(), octet, cfg), "a", cfgD)
	l1 := randomBytes(3000)
	l1D := digest.SHA512.FromBytes(l1)
	r := h.do("POST", "/v2/a/blobs/uploads/", nil, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	created(h.do("PUT", withQuery(h.location(r), "digest="+l1D.String()), octet, l1), "a", l1D)
	l2 := randomBytes(2000)
	l2D := digest.SHA512.FromBytes(l2)
	r = h.do("POST", "/v2/a/blobs/uploads/", nil, nil)
	r = h.do("PATCH", h.location(r), map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "0-999"}, l2[:1000])
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	created(h.do("PUT", withQuery(h.location(r), "digest="+l2D.String()), map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "1000-1999"}, l2[1000:]), "a", l2D)

	// a wrong sha512 is refused
	r = h.do("POST", "/v2/a/blobs/uploads/?digest="+digest.SHA512.FromBytes([]byte("x")).String(), octet, l1)
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "DIGEST_INVALID", r.code())

	for _, m := range []string{"HEAD", "GET"} {
		r = h.do(m, "/v2/a/blobs/"+l1D.String(), nil, nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, l1D.String(), r.header.Get("Docker-Content-Digest"))
	}
	assert.Equal(t, l1, r.body)
	r = h.do("GET", "/v2/a/blobs/"+l1D.String(), map[string]string{"Range": "bytes=5-9"}, nil)
	require.Equal(t, http.StatusPartialContent, r.status)
	assert.Equal(t, l1[5:10], r.body)

	// mount into another repository by sha512; a source without it opens an upload
	created(h.do("POST", "/v2/b/blobs/uploads/?mount="+l1D.String()+"&from=a", nil, nil), "b", l1D)
	r = h.do("GET", "/v2/b/blobs/"+l1D.String(), nil, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	assert.Equal(t, l1, r.body)
	r = h.do("POST", "/v2/b/blobs/uploads/?mount="+l2D.String()+"&from=nothing", nil, nil)
	assert.Equal(t, http.StatusAccepted, r.status)

	// a manifest of sha512 descriptors, pushed by its sha512 digest and by tag
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cfgD, Size: int64(len(cfg))},
		Layers: []v1.Descriptor{{MediaType: v1.MediaTypeImageLayer, Digest: l1D, Size: int64(len(l1))}, {MediaType: v1.MediaTypeImageLayer, Digest: l2D, Size: int64(len(l2))}}}
	m.SchemaVersion = 2
	mb, err := json.Marshal(m)
	require.NoError(t, err)
	mD := digest.SHA512.FromBytes(mb)
	r = h.putManifest("a", digest.SHA512.FromBytes(append(mb, ' ')).String(), mb, v1.MediaTypeImageManifest)
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "DIGEST_INVALID", r.code())
	bad := m
	bad.Layers = []v1.Descriptor{{MediaType: v1.MediaTypeImageLayer, Digest: l1D, Size: 1}}
	badB, _ := json.Marshal(bad)
	r = h.putManifest("a", digest.SHA512.FromBytes(badB).String(), badB, v1.MediaTypeImageManifest)
	assert.Equal(t, "MANIFEST_INVALID", r.code(), "a descriptor's size is checked against the stored blob")
	r = h.putManifest("a", mD.String(), mb, v1.MediaTypeImageManifest)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	assert.Equal(t, mD.String(), r.header.Get("Docker-Content-Digest"))
	assert.Equal(t, "/v2/a/manifests/"+mD.String(), locPath(t, r))
	require.Equal(t, http.StatusCreated, h.putManifest("a", "v1", mb, v1.MediaTypeImageManifest).status)
	for _, m := range []string{"HEAD", "GET"} {
		r = h.do(m, "/v2/a/manifests/"+mD.String(), nil, nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, mD.String(), r.header.Get("Docker-Content-Digest"))
	}
	assert.Equal(t, mb, r.body)

	// gc keeps what only sha512 descriptors name
	res, err := srv.CollectGarbage(context.Background(), GCOptions{DeleteUntagged: true})
	require.NoError(t, err)
	assert.Empty(t, res.DeletedBlobs)
	assert.Empty(t, res.DeletedManifests)
	for _, d := range []digest.Digest{cfgD, l1D, l2D} {
		assert.Equal(t, http.StatusOK, h.do("GET", "/v2/a/blobs/"+d.String(), nil, nil).status, d.String())
	}
	assert.Equal(t, http.StatusOK, h.do("GET", "/v2/a/manifests/"+mD.String(), nil, nil).status)

	// deleting one name deletes the content under every name
	require.Equal(t, http.StatusAccepted, h.do("DELETE", "/v2/a/manifests/"+mD.String(), nil, nil).status)
	for _, ref := range []string{mD.String(), digest.FromBytes(mb).String(), "v1"} {
		assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/a/manifests/"+ref, nil, nil).status, ref)
	}
	require.Equal(t, http.StatusAccepted, h.do("DELETE", "/v2/a/blobs/"+digest.FromBytes(l1).String(), nil, nil).status)
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/a/blobs/"+l1D.String(), nil, nil).status)
	require.Equal(t, http.StatusAccepted, h.do("DELETE", "/v2/a/blobs/"+l2D.String(), nil, nil).status)
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/a/blobs/"+digest.FromBytes(l2).String(), nil, nil).status)
	assert.Equal(t, http.StatusOK, h.do("GET", "/v2/b/blobs/"+l1D.String(), nil, nil).status, "other repositories keep their links")

	// gc then deletes the blobs no manifest names, with their links under every name
	res, err = srv.CollectGarbage(context.Background(), GCOptions{})
	require.NoError(t, err)
	assert.ElementsMatch(t, []digest.Digest{digest.FromBytes(l1), digest.FromBytes(l2), digest.FromBytes(cfg), digest.FromBytes(mb)}, res.DeletedBlobs)
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/a/blobs/"+cfgD.String(), nil, nil).status)
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/b/blobs/"+l1D.String(), nil, nil).status)
	left, err := listAliases(context.Background(), srv.driver, "a", layersDir)
	require.NoError(t, err)
	assert.Empty(t, left, "no alias link is left naming a deleted blob")
}

// An untagged manifest that a tagged index names by its sha512 is kept by gc, and so are
// its blobs; the same manifest without the index goes.
func TestSHA512GCIndexChild(t *testing.T) {
	dir := t.TempDir()
	srv, ts := newTestServer(t, Config{RootDirectory: dir})
	h := &hub{t: t, url: ts.URL}
	m, mb := h.image("a", 1)
	mD := digest.SHA512.FromBytes(mb)
	require.Equal(t, http.StatusCreated, h.putManifest("a", mD.String(), mb, v1.MediaTypeImageManifest).status)
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{{MediaType: v1.MediaTypeImageManifest, Digest: mD, Size: int64(len(mb))}}}
	idx.SchemaVersion = 2
	ib, err := json.Marshal(idx)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, h.putManifest("a", "idx", ib, v1.MediaTypeImageIndex).status)

	res, err := CollectGarbage(context.Background(), dir, GCOptions{DeleteUntagged: true})
	require.NoError(t, err)
	assert.Empty(t, res.DeletedManifests)
	assert.Empty(t, res.DeletedBlobs)
	assert.Equal(t, http.StatusOK, h.do("GET", "/v2/a/manifests/"+mD.String(), nil, nil).status)
	assert.Equal(t, http.StatusOK, h.do("GET", "/v2/a/blobs/"+m.Layers[0].Digest.String(), nil, nil).status)

	require.Equal(t, http.StatusAccepted, h.do("DELETE", "/v2/a/manifests/"+digest.FromBytes(ib).String(), nil, nil).status)
	res, err = CollectGarbage(context.Background(), dir, GCOptions{DeleteUntagged: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"a@" + digest.FromBytes(mb).String()}, res.DeletedManifests)
	assert.Contains(t, res.DeletedBlobs, m.Layers[0].Digest)
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/a/manifests/"+mD.String(), nil, nil).status)
	left, err := listAliases(context.Background(), srv.driver, "a", revisionsDir)
	require.NoError(t, err)
	assert.Empty(t, left)
}
