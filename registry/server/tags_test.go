package server

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sparseIndex is an index over the pushed image mb and a manifest that was never pushed.
func sparseIndex(t *testing.T, mb []byte) (absent digest.Digest, ib []byte) {
	absent = digest.FromBytes(randomBytes(64))
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{
		{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb)), Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}},
		{MediaType: v1.MediaTypeImageManifest, Digest: absent, Size: 1024, Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}},
	}}
	idx.SchemaVersion = 2
	ib, err := json.Marshal(idx)
	require.NoError(t, err)
	return absent, ib
}

// An index whose child manifests are not in the repository is refused by default, with
// stock distribution's MANIFEST_BLOB_UNKNOWN, and nothing is tagged.
func TestIndexMissingChildRefused(t *testing.T) {
	for _, inMemory := range []bool{false, true} {
		_, ts := newTestServer(t, Config{InMemory: inMemory})
		h := &hub{t: t, url: ts.URL}
		_, mb := h.image("idx", 1)
		require.Equal(t, http.StatusCreated, h.putManifest("idx", "img", mb, v1.MediaTypeImageManifest).status)
		absent, ib := sparseIndex(t, mb)

		for _, ref := range []string{"multi", digest.FromBytes(ib).String()} {
			r := h.putManifest("idx", ref, ib, v1.MediaTypeImageIndex)
			assert.Equal(t, http.StatusBadRequest, r.status, string(r.body))
			assert.Equal(t, "MANIFEST_BLOB_UNKNOWN", r.code())
			assert.Contains(t, string(r.body), absent.String())
		}
		r := h.do("GET", "/v2/idx/manifests/multi", nil, nil)
		assert.Equal(t, http.StatusNotFound, r.status)
		r = h.do("GET", "/v2/idx/tags/list", nil, nil)
		assert.NotContains(t, string(r.body), "multi")

		// a child in another repository is not in this one
		r = h.putManifest("other", "multi", ib, v1.MediaTypeImageIndex)
		assert.Equal(t, "MANIFEST_BLOB_UNKNOWN", r.code())
	}
}

// With AllowSparseIndex, an index with absent children and an image with absent layers
// are stored, tagged and served; the absent content stays absent.
func TestSparseManifestsAllowed(t *testing.T) {
	for _, inMemory := range []bool{false, true} {
		_, ts := newTestServer(t, Config{InMemory: inMemory, AllowSparseIndex: true})
		h := &hub{t: t, url: ts.URL}
		m, mb := h.image("sparse", 1)
		require.Equal(t, http.StatusCreated, h.putManifest("sparse", "img", mb, v1.MediaTypeImageManifest).status)
		absent, ib := sparseIndex(t, mb)
		id := digest.FromBytes(ib)
		r := h.putManifest("sparse", "multi", ib, v1.MediaTypeImageIndex)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		assert.Equal(t, id.String(), r.header.Get("Docker-Content-Digest"))
		assert.Equal(t, "/v2/sparse/manifests/"+id.String(), locPath(t, r))
		for _, ref := range []string{"multi", id.String()} {
			r = h.do("GET", "/v2/sparse/manifests/"+ref, map[string]string{"Accept": v1.MediaTypeImageIndex}, nil)
			require.Equal(t, http.StatusOK, r.status, ref)
			assert.Equal(t, ib, r.body)
			assert.Equal(t, id.String(), r.header.Get("Docker-Content-Digest"))
		}
		assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/sparse/manifests/"+absent.String(), nil, nil).status)

		// an image one of whose layers was never pushed
		layer := randomBytes(100)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer), Size: 100})
		mb2, err := json.Marshal(m)
		require.NoError(t, err)
		r = h.putManifest("sparse", digest.FromBytes(mb2).String(), mb2, v1.MediaTypeImageManifest)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		r = h.do("GET", "/v2/sparse/manifests/"+digest.FromBytes(mb2).String(), map[string]string{"Accept": v1.MediaTypeImageManifest}, nil)
		assert.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, mb2, r.body)
		assert.Equal(t, http.StatusNotFound, h.do("HEAD", "/v2/sparse/blobs/"+digest.FromBytes(layer).String(), nil, nil).status)

		// still checked: a digest that does not match the body
		r = h.putManifest("sparse", digest.FromBytes([]byte("x")).String(), mb2, v1.MediaTypeImageManifest)
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Equal(t, "DIGEST_INVALID", r.code())
	}
}

// PUT /v2/<name>/manifests/<digest>?tag=a&tag=b (distribution-spec 1.1) tags the manifest
// and answers an OCI-Tag header per tag; a tag pushed by a sha512 digest answers sha512.
func TestManifestTagParams(t *testing.T) {
	for _, inMemory := range []bool{false, true} {
		_, ts := newTestServer(t, Config{InMemory: inMemory})
		h := &hub{t: t, url: ts.URL}
		_, mb := h.image("tp", 1)
		md := digest.FromBytes(mb)

		r := h.putManifest("tp", md.String()+"?tag=a&tag=b", mb, v1.MediaTypeImageManifest)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		assert.ElementsMatch(t, []string{"a", "b"}, r.header.Values("OCI-Tag"))
		assert.Equal(t, md.String(), r.header.Get("Docker-Content-Digest"))
		for _, tag := range []string{"a", "b"} {
			r = h.do("HEAD", "/v2/tp/manifests/"+tag, map[string]string{"Accept": v1.MediaTypeImageManifest}, nil)
			assert.Equal(t, http.StatusOK, r.status, tag)
			assert.Equal(t, md.String(), r.header.Get("Docker-Content-Digest"), tag)
		}
		r = h.do("GET", "/v2/tp/tags/list", nil, nil)
		assert.JSONEq(t, `{"name":"tp","tags":["a","b"]}`, string(r.body))

		// an invalid tag: nothing stored
		_, mb2 := h.image("tp", 2)
		r = h.putManifest("tp", digest.FromBytes(mb2).String()+"?tag=ok&tag=-bad", mb2, v1.MediaTypeImageManifest)
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Equal(t, "TAG_INVALID", r.code())
		assert.Equal(t, http.StatusNotFound, h.do("HEAD", "/v2/tp/manifests/ok", nil, nil).status)

		// by sha512: the tag answers with the sha512 the client named
		d512 := digest.SHA512.FromBytes(mb2)
		r = h.putManifest("tp", d512.String()+"?tag=c", mb2, v1.MediaTypeImageManifest)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		assert.Equal(t, []string{"c"}, r.header.Values("OCI-Tag"))
		assert.Equal(t, d512.String(), r.header.Get("Docker-Content-Digest"))
		for _, m := range []string{"HEAD", "GET"} {
			r = h.do(m, "/v2/tp/manifests/c", map[string]string{"Accept": v1.MediaTypeImageManifest}, nil)
			require.Equal(t, http.StatusOK, r.status)
			assert.Equal(t, d512.String(), r.header.Get("Docker-Content-Digest"), m)
		}
		// the tag pushed again by name: it answers the sha256 again
		r = h.putManifest("tp", "c", mb2, v1.MediaTypeImageManifest)
		require.Equal(t, http.StatusCreated, r.status)
		r = h.do("HEAD", "/v2/tp/manifests/c", map[string]string{"Accept": v1.MediaTypeImageManifest}, nil)
		assert.Equal(t, digest.FromBytes(mb2).String(), r.header.Get("Docker-Content-Digest"))
		// moved to another manifest by a sha256 tag parameter: sha256
		require.Equal(t, http.StatusCreated, h.putManifest("tp", d512.String()+"?tag=c", mb2, v1.MediaTypeImageManifest).status)
		require.Equal(t, http.StatusCreated, h.putManifest("tp", md.String()+"?tag=c", mb, v1.MediaTypeImageManifest).status)
		r = h.do("HEAD", "/v2/tp/manifests/c", map[string]string{"Accept": v1.MediaTypeImageManifest}, nil)
		assert.Equal(t, md.String(), r.header.Get("Docker-Content-Digest"))
	}
}
