package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cluster-image/sealos/store/durable"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Conformance-style tests of the OCI distribution spec 1.1 over raw HTTP, one group per
// workflow of the spec (pull, push, content discovery, content management), against the
// hub on a temporary directory.

func TestBase(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	r := h.do("GET", "/v2/", nil, nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "registry/2.0", r.header.Get("Docker-Distribution-API-Version"))
	r = h.do("GET", "/nope", nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
}

func TestPushMonolithic(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	b := randomBytes(4096)
	d := digest.FromBytes(b)

	// single POST with digest
	r := h.do("POST", "/v2/mono/blobs/uploads/?digest="+d.String(), map[string]string{"Content-Type": "application/octet-stream"}, b)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	assert.Equal(t, "/v2/mono/blobs/"+d.String(), locPath(t, r))
	assert.Equal(t, d.String(), r.header.Get("Docker-Content-Digest"))

	// POST then PUT
	b2 := randomBytes(1000)
	assert.Equal(t, digest.FromBytes(b2), h.pushBlob("mono", b2))

	for _, dd := range []digest.Digest{d, digest.FromBytes(b2)} {
		r = h.do("HEAD", "/v2/mono/blobs/"+dd.String(), nil, nil)
		assert.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, dd.String(), r.header.Get("Docker-Content-Digest"))
	}
	r = h.do("GET", "/v2/mono/blobs/"+d.String(), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, b, r.body)
	assert.Equal(t, strconv.Itoa(len(b)), r.header.Get("Content-Length"))

	// range read
	r = h.do("GET", "/v2/mono/blobs/"+d.String(), map[string]string{"Range": "bytes=10-19"}, nil)
	require.Equal(t, http.StatusPartialContent, r.status)
	assert.Equal(t, b[10:20], r.body)
}

func TestPushChunked(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	b := randomBytes(3000)
	d := digest.FromBytes(b)

	r := h.do("POST", "/v2/chunk/blobs/uploads/", nil, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	require.NotEmpty(t, r.header.Get("Docker-Upload-UUID"))
	loc := h.location(r)

	// first chunk
	r = h.do("PATCH", loc, map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "0-999", "Content-Length": "1000"}, b[:1000])
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	assert.Equal(t, "0-999", r.header.Get("Range"))
	loc = h.location(r)

	// upload status
	r = h.do("GET", loc, nil, nil)
	assert.Equal(t, http.StatusNoContent, r.status)
	assert.Equal(t, "0-999", r.header.Get("Range"))

	// out-of-order chunk: 416
	r = h.do("PATCH", loc, map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "1500-1999", "Content-Length": "500"}, b[1500:2000])
	assert.Equal(t, http.StatusRequestedRangeNotSatisfiable, r.status)
	assert.Equal(t, "RANGE_INVALID", r.code())

	// second chunk, in order
	r = h.do("PATCH", loc, map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "1000-1999", "Content-Length": "1000"}, b[1000:2000])
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	assert.Equal(t, "0-1999", r.header.Get("Range"))
	loc = h.location(r)

	// a chunk whose length disagrees with its range
	r = h.do("PATCH", loc, map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "2000-2099", "Content-Length": "50"}, b[2000:2050])
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "SIZE_INVALID", r.code())

	// close with the last chunk in the PUT
	r = h.do("PUT", withQuery(loc, "digest="+d.String()), map[string]string{"Content-Type": "application/octet-stream", "Content-Range": "2000-2999", "Content-Length": "1000"}, b[2000:])
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	assert.Equal(t, "/v2/chunk/blobs/"+d.String(), locPath(t, r))

	r = h.do("GET", "/v2/chunk/blobs/"+d.String(), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, b, r.body)

	// the finished session is gone
	r = h.do("GET", loc, nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "BLOB_UPLOAD_UNKNOWN", r.code())
}

func TestPushCancelUpload(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	r := h.do("POST", "/v2/cancel/blobs/uploads/", nil, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	loc := h.location(r)
	r = h.do("PATCH", loc, map[string]string{"Content-Type": "application/octet-stream"}, randomBytes(100))
	require.Equal(t, http.StatusAccepted, r.status)
	loc = h.location(r)
	r = h.do("DELETE", loc, nil, nil)
	assert.Equal(t, http.StatusNoContent, r.status)
	r = h.do("GET", loc, nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "BLOB_UPLOAD_UNKNOWN", r.code())
}

func TestMount(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	d := h.pushBlob("src/repo", randomBytes(2048))

	r := h.do("POST", "/v2/dst/repo/blobs/uploads/?mount="+d.String()+"&from=src/repo", nil, nil)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	assert.Equal(t, "/v2/dst/repo/blobs/"+d.String(), locPath(t, r))
	r = h.do("HEAD", "/v2/dst/repo/blobs/"+d.String(), nil, nil)
	assert.Equal(t, http.StatusOK, r.status)

	// a blob the source lacks: the registry falls back to a new upload session
	missing := digest.FromBytes([]byte("missing"))
	r = h.do("POST", "/v2/dst/repo/blobs/uploads/?mount="+missing.String()+"&from=src/repo", nil, nil)
	assert.Equal(t, http.StatusAccepted, r.status)
	assert.NotEmpty(t, r.header.Get("Location"))

	// mount without from: the registry may mount any blob it holds, or open a session
	r = h.do("POST", "/v2/third/blobs/uploads/?mount="+d.String(), nil, nil)
	assert.Contains(t, []int{http.StatusCreated, http.StatusAccepted}, r.status)
}

func TestManifests(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	m, mb := h.image("app", 2)
	md := digest.FromBytes(mb)

	r := h.putManifest("app", "v1", mb, v1.MediaTypeImageManifest)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	assert.Equal(t, md.String(), r.header.Get("Docker-Content-Digest"))
	assert.Equal(t, "/v2/app/manifests/"+md.String(), locPath(t, r))
	assert.Empty(t, r.header.Get("OCI-Subject"))

	for _, ref := range []string{"v1", md.String()} {
		r = h.do("GET", "/v2/app/manifests/"+ref, map[string]string{"Accept": v1.MediaTypeImageManifest}, nil)
		require.Equal(t, http.StatusOK, r.status, ref)
		assert.Equal(t, mb, r.body)
		assert.Equal(t, v1.MediaTypeImageManifest, r.header.Get("Content-Type"))
		assert.Equal(t, md.String(), r.header.Get("Docker-Content-Digest"))
		r = h.do("HEAD", "/v2/app/manifests/"+ref, map[string]string{"Accept": v1.MediaTypeImageManifest}, nil)
		assert.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, strconv.Itoa(len(mb)), r.header.Get("Content-Length"))
	}

	// push by digest
	m2 := m
	m2.Annotations = map[string]string{"x": "y"}
	mb2, _ := json.Marshal(m2)
	r = h.putManifest("app", digest.FromBytes(mb2).String(), mb2, v1.MediaTypeImageManifest)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))

	// an index over both
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{
		{MediaType: v1.MediaTypeImageManifest, Digest: md, Size: int64(len(mb)), Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}},
		{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(mb2), Size: int64(len(mb2)), Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}},
	}}
	idx.SchemaVersion = 2
	ib, _ := json.Marshal(idx)
	r = h.putManifest("app", "multi", ib, v1.MediaTypeImageIndex)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = h.do("GET", "/v2/app/manifests/multi", map[string]string{"Accept": v1.MediaTypeImageIndex}, nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, v1.MediaTypeImageIndex, r.header.Get("Content-Type"))

	// non-distributable layer with URLs is accepted
	nd := m
	nd.Layers = append([]v1.Descriptor{}, m.Layers...)
	nd.Layers = append(nd.Layers, v1.Descriptor{MediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", //nolint:staticcheck
		Digest: digest.FromBytes([]byte("foreign")), Size: 7, URLs: []string{"https://example.com/layer.tar.gz"}})
	nb, _ := json.Marshal(nd)
	r = h.putManifest("app", "foreign", nb, v1.MediaTypeImageManifest)
	assert.Equal(t, http.StatusCreated, r.status, string(r.body))

	// an artifact with an empty config and artifactType
	empty := h.pushBlob("app", []byte("{}"))
	art := v1.Manifest{MediaType: v1.MediaTypeImageManifest, ArtifactType: "application/vnd.example.sbom",
		Config: v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2},
		Layers: []v1.Descriptor{{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2}}}
	art.SchemaVersion = 2
	ab, _ := json.Marshal(art)
	r = h.putManifest("app", "artifact", ab, v1.MediaTypeImageManifest)
	assert.Equal(t, http.StatusCreated, r.status, string(r.body))
}

// TestErrorCodes checks each error code of the spec against the request that should
// produce it.
func TestErrorCodes(t *testing.T) {
	for _, mode := range []string{"filesystem", "inmemory"} {
		t.Run(mode, func(t *testing.T) { testErrorCodes(t, Config{InMemory: mode == "inmemory"}) })
	}
}

func testErrorCodes(t *testing.T, cfg Config) {
	_, ts := newTestServer(t, cfg)
	h := &hub{t: t, url: ts.URL}
	m, mb := h.image("err", 1)
	require.Equal(t, http.StatusCreated, h.putManifest("err", "v1", mb, v1.MediaTypeImageManifest).status)
	unknown := digest.FromBytes([]byte("nothing here"))

	missingBlob := m
	missingBlob.Layers = []v1.Descriptor{{MediaType: v1.MediaTypeImageLayerGzip, Digest: unknown, Size: 12}}
	missingBlobJSON, _ := json.Marshal(missingBlob)
	badSize := m
	badSize.Config.Size++
	badSizeJSON, _ := json.Marshal(badSize)
	session := func() string {
		r := h.do("POST", "/v2/err/blobs/uploads/", nil, nil)
		require.Equal(t, http.StatusAccepted, r.status)
		return h.location(r)
	}

	tests := []struct {
		name   string
		method string
		path   func() string
		hdr    map[string]string
		body   []byte
		status int
		code   string
	}{
		{"blob unknown", "GET", func() string { return "/v2/err/blobs/" + unknown.String() }, nil, nil, 404, "BLOB_UNKNOWN"},
		{"blob unknown head", "HEAD", func() string { return "/v2/err/blobs/" + unknown.String() }, nil, nil, 404, ""},
		{"blob invalid digest", "GET", func() string { return "/v2/err/blobs/sha256:abc" }, nil, nil, 400, "DIGEST_INVALID"},
		{"upload wrong digest", "PUT", func() string { return withQuery(session(), "digest="+unknown.String()) }, map[string]string{"Content-Type": "application/octet-stream"}, []byte("some data"), 400, "DIGEST_INVALID"},
		{"upload missing digest", "PUT", session, map[string]string{"Content-Type": "application/octet-stream"}, []byte("x"), 400, "DIGEST_INVALID"},
		{"upload malformed digest", "PUT", func() string { return withQuery(session(), "digest=sha256:zz") }, nil, []byte("x"), 400, "DIGEST_INVALID"},
		{"upload unknown session", "PATCH", func() string {
			loc := session()
			require.Equal(t, http.StatusNoContent, h.do("DELETE", loc, nil, nil).status)
			return loc
		}, nil, []byte("x"), 404, "BLOB_UPLOAD_UNKNOWN"},
		{"upload id not an id", "GET", func() string { return "/v2/err/blobs/uploads/=" }, nil, nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"upload id dot-dot", "PUT", func() string { return "/v2/err/blobs/uploads/..?digest=" + unknown.String() }, nil, []byte("x"), 404, "BLOB_UPLOAD_UNKNOWN"},
		{"upload bad session state", "PATCH", func() string { return "/v2/err/blobs/uploads/3f4b5a2e-0000-0000-0000-000000000000?_state=x" }, nil, []byte("x"), 404, ""},
		{"monolithic POST wrong digest", "POST", func() string { return "/v2/err/blobs/uploads/?digest=" + unknown.String() }, map[string]string{"Content-Type": "application/octet-stream"}, []byte("other"), 400, "DIGEST_INVALID"},
		{"manifest unknown tag", "GET", func() string { return "/v2/err/manifests/nope" }, nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"manifest unknown digest", "GET", func() string { return "/v2/err/manifests/" + unknown.String() }, nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"manifest in unknown repo", "GET", func() string { return "/v2/nosuchrepo/manifests/latest" }, nil, nil, 404, ""},
		{"manifest invalid json", "PUT", func() string { return "/v2/err/manifests/bad" }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, []byte("{not json"), 400, "MANIFEST_INVALID"},
		{"manifest schema1", "PUT", func() string { return "/v2/err/manifests/old" }, map[string]string{"Content-Type": "application/vnd.docker.distribution.manifest.v1+json"}, []byte(`{"schemaVersion":1,"name":"err","tag":"old","fsLayers":[]}`), 400, "MANIFEST_INVALID"},
		{"manifest media type mismatch", "PUT", func() string { return "/v2/err/manifests/mismatch" }, map[string]string{"Content-Type": v1.MediaTypeImageIndex}, mb, 400, "MANIFEST_INVALID"},
		{"manifest empty body", "PUT", func() string { return "/v2/err/manifests/empty" }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, []byte{}, 400, "MANIFEST_INVALID"},
		{"manifest blob unknown", "PUT", func() string { return "/v2/err/manifests/missing" }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, missingBlobJSON, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"manifest wrong blob size", "PUT", func() string { return "/v2/err/manifests/size" }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, badSizeJSON, 400, "MANIFEST_INVALID"},
		{"manifest digest mismatch", "PUT", func() string { return "/v2/err/manifests/" + unknown.String() }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, mb, 400, "DIGEST_INVALID"},
		// distribution v3 answers these with 500 UNKNOWN (found by FuzzHub), or stores an index
		// whose child cannot be named
		{"manifest schemaVersion 0", "PUT", func() string { return "/v2/err/manifests/v0" }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, []byte(`{}`), 400, "MANIFEST_INVALID"},
		{"manifest null", "PUT", func() string { return "/v2/err/manifests/null" }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, []byte(`null`), 400, "MANIFEST_INVALID"},
		{"index schemaVersion 3", "PUT", func() string { return "/v2/err/manifests/v3" }, map[string]string{"Content-Type": v1.MediaTypeImageIndex}, []byte(`{"schemaVersion":3,"manifests":[]}`), 400, "MANIFEST_INVALID"},
		{"docker manifest schemaVersion 3", "PUT", func() string { return "/v2/err/manifests/d3" }, map[string]string{"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"}, []byte(`{"schemaVersion":3,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}`), 400, "MANIFEST_INVALID"},
		{"manifest malformed config digest", "PUT", func() string { return "/v2/err/manifests/cfg" }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:zz","size":1},"layers":[]}`), 400, "MANIFEST_INVALID"},
		{"index malformed child digest", "PUT", func() string { return "/v2/err/manifests/child" }, map[string]string{"Content-Type": v1.MediaTypeImageIndex}, []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"` + v1.MediaTypeImageManifest + `","digest":"sha256:abc","size":1}]}`), 400, "MANIFEST_INVALID"},
		{"index negative child size", "PUT", func() string { return "/v2/err/manifests/negative" }, map[string]string{"Content-Type": v1.MediaTypeImageIndex}, []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"` + v1.MediaTypeImageManifest + `","digest":"` + digest.FromBytes(mb).String() + `","size":-1}]}`), 400, "MANIFEST_INVALID"},
		{"manifest malformed subject digest", "PUT", func() string { return "/v2/err/manifests/subj" }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + unknown.String() + `","size":1},"layers":[],"subject":{"mediaType":"a/b","digest":"md5:00","size":1}}`), 400, "MANIFEST_INVALID"},
		{"manifest oversized", "PUT", func() string { return "/v2/err/manifests/big" }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, []byte(`{"schemaVersion":2,"x":"` + strings.Repeat("a", 5<<20) + `"}`), 400, "MANIFEST_INVALID"},
		{"tag invalid", "PUT", func() string { return "/v2/err/manifests/-bad-tag" }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, mb, 400, "TAG_INVALID"},
		{"get invalid tag", "GET", func() string { return "/v2/err/manifests/.INVALID_MANIFEST_NAME" }, nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"head invalid tag", "HEAD", func() string { return "/v2/err/manifests/.INVALID_MANIFEST_NAME" }, nil, nil, 404, ""},
		{"delete invalid tag", "DELETE", func() string { return "/v2/err/manifests/.INVALID_MANIFEST_NAME" }, nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"tag too long", "PUT", func() string { return "/v2/err/manifests/" + strings.Repeat("t", 129) }, map[string]string{"Content-Type": v1.MediaTypeImageManifest}, mb, 400, "TAG_INVALID"},
		{"name invalid upper", "GET", func() string { return "/v2/Bad/manifests/v1" }, nil, nil, 400, "NAME_INVALID"},
		{"name invalid chars", "POST", func() string { return "/v2/a..b/blobs/uploads/" }, nil, nil, 400, "NAME_INVALID"},
		{"name unknown tags", "GET", func() string { return "/v2/nosuchrepo/tags/list" }, nil, nil, 404, "NAME_UNKNOWN"},
		{"referrers invalid digest", "GET", func() string { return "/v2/err/referrers/notadigest" }, nil, nil, 400, "DIGEST_INVALID"},
		{"referrers invalid name", "GET", func() string { return "/v2/BAD/referrers/" + unknown.String() }, nil, nil, 400, "NAME_INVALID"},
		{"referrers wrong method", "PUT", func() string { return "/v2/err/referrers/" + unknown.String() }, nil, nil, 405, "UNSUPPORTED"},
		{"delete unknown manifest", "DELETE", func() string { return "/v2/err/manifests/" + unknown.String() }, nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"delete unknown blob", "DELETE", func() string { return "/v2/err/blobs/" + unknown.String() }, nil, nil, 404, "BLOB_UNKNOWN"},
		// distribution builds a storage path from last: all, nothing, or (in memory) a 500
		{"tags last invalid", "GET", func() string { return "/v2/err/tags/list?last=..%2F..%2Fx" }, nil, nil, 400, "TAG_INVALID"},
		{"tags last space", "GET", func() string { return "/v2/err/tags/list?n=1&last=%20" }, nil, nil, 400, "TAG_INVALID"},
		{"tags last of unknown repo", "GET", func() string { return "/v2/nosuchrepo/tags/list?last=a" }, nil, nil, 404, "NAME_UNKNOWN"},
		{"catalog last invalid", "GET", func() string { return "/v2/_catalog?last=a%2F%2Fb" }, nil, nil, 400, "NAME_INVALID"},
		{"catalog last space", "GET", func() string { return "/v2/_catalog?n=1&last=%20" }, nil, nil, 400, "NAME_INVALID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			r := h.do(tc.method, tc.path(), tc.hdr, tc.body)
			assert.Equal(t, tc.status, r.status, string(r.body))
			if tc.code != "" {
				assert.Equal(t, tc.code, r.code(), string(r.body))
				assert.Contains(t, r.header.Get("Content-Type"), "application/json")
			}
		})
	}
}

func TestTagsPagination(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	_, mb := h.image("tags", 1)
	var want []string
	for i := 0; i < 7; i++ {
		tag := fmt.Sprintf("t%d", i)
		want = append(want, tag)
		require.Equal(t, http.StatusCreated, h.putManifest("tags", tag, mb, v1.MediaTypeImageManifest).status)
	}
	type list struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	var all list
	r := h.do("GET", "/v2/tags/tags/list", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	require.NoError(t, json.Unmarshal(r.body, &all))
	assert.Equal(t, "tags", all.Name)
	assert.Equal(t, want, all.Tags)

	// page through with n and the Link header
	var got []string
	next := "/v2/tags/tags/list?n=3"
	for pages := 0; next != ""; pages++ {
		require.Less(t, pages, 5)
		r = h.do("GET", next, nil, nil)
		require.Equal(t, http.StatusOK, r.status)
		var l list
		require.NoError(t, json.Unmarshal(r.body, &l))
		assert.LessOrEqual(t, len(l.Tags), 3)
		got = append(got, l.Tags...)
		next = linkNext(r.header.Get("Link"))
	}
	assert.Equal(t, want, got)

	// last
	r = h.do("GET", "/v2/tags/tags/list?n=2&last=t3", nil, nil)
	var l list
	require.NoError(t, json.Unmarshal(r.body, &l))
	assert.Equal(t, []string{"t4", "t5"}, l.Tags)
	r = h.do("GET", "/v2/tags/tags/list?last=t5", nil, nil)
	l = list{}
	require.NoError(t, json.Unmarshal(r.body, &l))
	assert.Equal(t, []string{"t6"}, l.Tags)
	// n=0: an empty list
	r = h.do("GET", "/v2/tags/tags/list?n=0", nil, nil)
	assert.Equal(t, http.StatusOK, r.status)
	l = list{}
	require.NoError(t, json.Unmarshal(r.body, &l))
	assert.Empty(t, l.Tags)
}

// linkNext extracts the URL of a Link: <url>; rel="next" header.
func linkNext(link string) string {
	if link == "" {
		return ""
	}
	start, end := strings.Index(link, "<"), strings.Index(link, ">")
	if start < 0 || end < start || !strings.Contains(link, `rel="next"`) {
		return ""
	}
	return link[start+1 : end]
}

func TestCatalogPagination(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	want := []string{"a/one", "b", "c/x/y", "d", "e"}
	for _, repo := range want {
		_, mb := h.image(repo, 1)
		require.Equal(t, http.StatusCreated, h.putManifest(repo, "v1", mb, v1.MediaTypeImageManifest).status)
	}
	type cat struct {
		Repositories []string `json:"repositories"`
	}
	var got []string
	next := "/v2/_catalog?n=2"
	for pages := 0; next != ""; pages++ {
		require.Less(t, pages, 5)
		r := h.do("GET", next, nil, nil)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var c cat
		require.NoError(t, json.Unmarshal(r.body, &c))
		assert.LessOrEqual(t, len(c.Repositories), 2)
		got = append(got, c.Repositories...)
		next = linkNext(r.header.Get("Link"))
	}
	assert.Equal(t, want, got)

	// more than the registry's maximum: fewer, not an error
	r := h.do("GET", "/v2/_catalog?n=100000", nil, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var c cat
	require.NoError(t, json.Unmarshal(r.body, &c))
	assert.Equal(t, want, c.Repositories)
	r = h.do("GET", "/v2/_catalog?n=-1", nil, nil)
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "PAGINATION_NUMBER_INVALID", r.code())
	r = h.do("GET", "/v2/_catalog?n=2&last=c/x/y", nil, nil)
	c = cat{}
	require.NoError(t, json.Unmarshal(r.body, &c))
	assert.Equal(t, []string{"d", "e"}, c.Repositories)
}

func TestReferrers(t *testing.T) {
	for _, inmem := range []bool{false, true} {
		t.Run(fmt.Sprintf("inmem=%v", inmem), func(t *testing.T) {
			_, ts := newTestServer(t, Config{InMemory: inmem})
			h := &hub{t: t, url: ts.URL}
			_, mb := h.image("ref", 1)
			subject := digest.FromBytes(mb)
			require.Equal(t, http.StatusCreated, h.putManifest("ref", "v1", mb, v1.MediaTypeImageManifest).status)

			// nothing refers to it yet: an empty index, not 404
			idx := referrers(h, "ref", subject, "")
			assert.Empty(t, idx.Manifests)
			// nor to a digest the registry does not know
			assert.Empty(t, referrers(h, "ref", digest.FromBytes([]byte("unknown")), "").Manifests)

			empty := h.pushBlob("ref", []byte("{}"))
			artifact := func(artifactType string, ann map[string]string) (digest.Digest, []byte) {
				m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, ArtifactType: artifactType,
					Config:      v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2},
					Layers:      []v1.Descriptor{{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2}},
					Subject:     &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: subject, Size: int64(len(mb))},
					Annotations: ann}
				m.SchemaVersion = 2
				b, _ := json.Marshal(m)
				return digest.FromBytes(b), b
			}
			sbom, sbomJSON := artifact("application/vnd.example.sbom", map[string]string{"k": "v"})
			sig, sigJSON := artifact("application/vnd.example.sig", nil)

			r := h.putManifest("ref", sbom.String(), sbomJSON, v1.MediaTypeImageManifest)
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
			assert.Equal(t, subject.String(), r.header.Get("OCI-Subject"))
			r = h.putManifest("ref", "sig", sigJSON, v1.MediaTypeImageManifest) // by tag works too
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
			assert.Equal(t, subject.String(), r.header.Get("OCI-Subject"))

			// an artifact with no artifactType takes the config media type
			cfg := h.pushBlob("ref", []byte(`{"custom":true}`))
			plain := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
				Config:  v1.Descriptor{MediaType: "application/vnd.example.config", Digest: cfg, Size: 15},
				Layers:  []v1.Descriptor{{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2}},
				Subject: &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: subject, Size: int64(len(mb))}}
			plain.SchemaVersion = 2
			pb, _ := json.Marshal(plain)
			require.Equal(t, http.StatusCreated, h.putManifest("ref", digest.FromBytes(pb).String(), pb, v1.MediaTypeImageManifest).status)

			// an index with a subject
			ix := v1.Index{MediaType: v1.MediaTypeImageIndex, ArtifactType: "application/vnd.example.bundle",
				Manifests: []v1.Descriptor{{MediaType: v1.MediaTypeImageManifest, Digest: sbom, Size: int64(len(sbomJSON))}},
				Subject:   &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: subject, Size: int64(len(mb))}}
			ix.SchemaVersion = 2
			ixb, _ := json.Marshal(ix)
			r = h.putManifest("ref", digest.FromBytes(ixb).String(), ixb, v1.MediaTypeImageIndex)
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
			assert.Equal(t, subject.String(), r.header.Get("OCI-Subject"))

			idx = referrers(h, "ref", subject, "")
			require.Len(t, idx.Manifests, 4)
			byDigest := map[digest.Digest]v1.Descriptor{}
			for _, d := range idx.Manifests {
				byDigest[d.Digest] = d
			}
			assert.Equal(t, "application/vnd.example.sbom", byDigest[sbom].ArtifactType)
			assert.Equal(t, map[string]string{"k": "v"}, byDigest[sbom].Annotations)
			assert.Equal(t, int64(len(sbomJSON)), byDigest[sbom].Size)
			assert.Equal(t, v1.MediaTypeImageManifest, byDigest[sbom].MediaType)
			assert.Equal(t, "application/vnd.example.config", byDigest[digest.FromBytes(pb)].ArtifactType)
			assert.Equal(t, v1.MediaTypeImageIndex, byDigest[digest.FromBytes(ixb)].MediaType)
			assert.Equal(t, "application/vnd.example.bundle", byDigest[digest.FromBytes(ixb)].ArtifactType)

			// filter
			idx = referrers(h, "ref", subject, "application/vnd.example.sig")
			require.Len(t, idx.Manifests, 1)
			assert.Equal(t, sig, idx.Manifests[0].Digest)

			// the subject itself may be pushed after its referrers, or never
			orphanSubject := digest.FromBytes([]byte("later"))
			m := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
				Config:  v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2},
				Layers:  []v1.Descriptor{{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2}},
				Subject: &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: orphanSubject, Size: 5}}
			m.SchemaVersion = 2
			ob, _ := json.Marshal(m)
			r = h.putManifest("ref", digest.FromBytes(ob).String(), ob, v1.MediaTypeImageManifest)
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
			assert.Len(t, referrers(h, "ref", orphanSubject, "").Manifests, 1)

			// deleting a referrer removes it from the index
			r = h.do("DELETE", "/v2/ref/manifests/"+sbom.String(), nil, nil)
			require.Equal(t, http.StatusAccepted, r.status, string(r.body))
			idx = referrers(h, "ref", subject, "")
			assert.Len(t, idx.Manifests, 3)
			for _, d := range idx.Manifests {
				assert.NotEqual(t, sbom, d.Digest)
			}
			// deleting a tag leaves the manifest, and its entry
			require.Equal(t, http.StatusAccepted, h.do("DELETE", "/v2/ref/manifests/sig", nil, nil).status)
			assert.Len(t, referrers(h, "ref", subject, "application/vnd.example.sig").Manifests, 1)
			// referrers are per repository
			assert.Empty(t, referrers(h, "other", subject, "").Manifests)
		})
	}
}

// TestReferrersPages walks a referrers list page by page through the Link header, with
// the page size set by the client (n) and by the hub (Config.ReferrersPageSize), with and
// without a filter: every referrer is listed exactly once, in the same order as unpaged.
func TestReferrersPages(t *testing.T) {
	_, ts := newTestServer(t, Config{ReferrersPageSize: 3})
	h := &hub{t: t, url: ts.URL}
	_, mb := h.image("pg", 1)
	subject := digest.FromBytes(mb)
	require.Equal(t, http.StatusCreated, h.putManifest("pg", "v1", mb, v1.MediaTypeImageManifest).status)
	empty := h.pushBlob("pg", []byte("{}"))
	sigs := map[digest.Digest]bool{}
	for i := range 7 {
		at := "application/vnd.example.sbom"
		if i%2 == 0 {
			at = "application/vnd.example.sig"
		}
		m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, ArtifactType: at,
			Config:      v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2},
			Layers:      []v1.Descriptor{{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2}},
			Subject:     &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: subject, Size: int64(len(mb))},
			Annotations: map[string]string{"i": fmt.Sprint(i)}}
		m.SchemaVersion = 2
		b, _ := json.Marshal(m)
		require.Equal(t, http.StatusCreated, h.putManifest("pg", digest.FromBytes(b).String(), b, v1.MediaTypeImageManifest).status)
		if i%2 == 0 {
			sigs[digest.FromBytes(b)] = true
		}
	}
	// walk follows Link headers from p and returns every page's digests.
	walk := func(p string) (pages [][]digest.Digest) {
		for p != "" {
			r := h.do("GET", p, nil, nil)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			var idx v1.Index
			require.NoError(t, json.Unmarshal(r.body, &idx))
			var page []digest.Digest
			for _, d := range idx.Manifests {
				page = append(page, d.Digest)
			}
			pages = append(pages, page)
			p = ""
			if l := r.header.Get("Link"); l != "" {
				require.Contains(t, l, `rel="next"`)
				p = ts.URL + l[strings.Index(l, "<")+1:strings.Index(l, ">")]
			}
			require.Less(t, len(pages), 10, "the pages never end")
		}
		return pages
	}
	flat := func(pages [][]digest.Digest) (all []digest.Digest) {
		for _, p := range pages {
			all = append(all, p...)
		}
		return all
	}
	srv := "/v2/pg/referrers/" + subject.String()
	// the hub's page size: 3 + 3 + 1
	pages := walk(srv)
	require.Len(t, pages, 3)
	assert.Len(t, pages[0], 3)
	assert.Len(t, pages[2], 1)
	want := flat(pages)
	require.Len(t, want, 7)
	seen := map[digest.Digest]bool{}
	for _, d := range want {
		assert.False(t, seen[d], "listed twice: %s", d)
		seen[d] = true
	}
	// a client's n below the hub's: 2 + 2 + 2 + 1, same order
	pages = walk(srv + "?n=2")
	assert.Len(t, pages, 4)
	assert.Equal(t, want, flat(pages))
	// a client's n above the hub's is cut to it
	assert.Len(t, walk(srv + "?n=100")[0], 3)
	// filtered: the filter goes on in the next pages
	pages = walk(srv + "?artifactType=application/vnd.example.sig&n=3")
	require.Len(t, pages, 2)
	got := flat(pages)
	require.Len(t, got, 4)
	for _, d := range got {
		assert.True(t, sigs[d], "%s is not a signature", d)
	}
	// a full last page does not link to an empty one: 3 SBOMs, pages of 3
	pages = walk(srv + "?artifactType=application/vnd.example.sbom")
	require.Len(t, pages, 1)
	assert.Len(t, pages[0], 3)
	// bad pagination parameters
	assert.Equal(t, "PAGINATION_NUMBER_INVALID", h.do("GET", srv+"?n=x", nil, nil).code())
	assert.Equal(t, "DIGEST_INVALID", h.do("GET", srv+"?last=nope", nil, nil).code())
}

func referrers(h *hub, repo string, d digest.Digest, artifactType string) v1.Index {
	h.t.Helper()
	p := "/v2/" + repo + "/referrers/" + d.String()
	if artifactType != "" {
		p += "?artifactType=" + artifactType
	}
	r := h.do("GET", p, nil, nil)
	require.Equal(h.t, http.StatusOK, r.status, string(r.body))
	assert.Equal(h.t, v1.MediaTypeImageIndex, r.header.Get("Content-Type"))
	if artifactType != "" {
		assert.Equal(h.t, "artifactType", r.header.Get("OCI-Filters-Applied"))
	} else {
		assert.Empty(h.t, r.header.Get("OCI-Filters-Applied"))
	}
	var idx v1.Index
	require.NoError(h.t, json.Unmarshal(r.body, &idx))
	assert.Equal(h.t, 2, idx.SchemaVersion)
	assert.Equal(h.t, v1.MediaTypeImageIndex, idx.MediaType)
	assert.NotNil(h.t, idx.Manifests, "manifests must be a list, not null")
	return idx
}

func TestDeletes(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	m, mb := h.image("del", 1)
	md := digest.FromBytes(mb)
	require.Equal(t, http.StatusCreated, h.putManifest("del", "v1", mb, v1.MediaTypeImageManifest).status)
	require.Equal(t, http.StatusCreated, h.putManifest("del", "v2", mb, v1.MediaTypeImageManifest).status)

	// tag delete: the manifest stays
	r := h.do("DELETE", "/v2/del/manifests/v1", nil, nil)
	assert.Equal(t, http.StatusAccepted, r.status, string(r.body))
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/del/manifests/v1", nil, nil).status)
	assert.Equal(t, http.StatusOK, h.do("GET", "/v2/del/manifests/"+md.String(), nil, nil).status)

	// manifest delete: gone, with its tags
	r = h.do("DELETE", "/v2/del/manifests/"+md.String(), nil, nil)
	assert.Equal(t, http.StatusAccepted, r.status, string(r.body))
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/del/manifests/"+md.String(), nil, nil).status)
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/v2/del/manifests/v2", nil, nil).status)

	// blob delete
	l := m.Layers[0].Digest
	r = h.do("DELETE", "/v2/del/blobs/"+l.String(), nil, nil)
	assert.Equal(t, http.StatusAccepted, r.status, string(r.body))
	r = h.do("GET", "/v2/del/blobs/"+l.String(), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "BLOB_UNKNOWN", r.code())
}

func TestDeleteDisabledAndReadOnly(t *testing.T) {
	dir := t.TempDir()
	{
		_, ts := newTestServer(t, Config{RootDirectory: dir, DisableDelete: true})
		h := &hub{t: t, url: ts.URL}
		_, mb := h.image("ro", 1)
		require.Equal(t, http.StatusCreated, h.putManifest("ro", "v1", mb, v1.MediaTypeImageManifest).status)
		r := h.do("DELETE", "/v2/ro/manifests/"+digest.FromBytes(mb).String(), nil, nil)
		assert.Equal(t, http.StatusMethodNotAllowed, r.status)
		assert.Equal(t, "UNSUPPORTED", r.code())
	}
	_, ts := newTestServer(t, Config{RootDirectory: dir, ReadOnly: true})
	h := &hub{t: t, url: ts.URL}
	assert.Equal(t, http.StatusOK, h.do("GET", "/v2/ro/manifests/v1", nil, nil).status)
	r := h.do("POST", "/v2/ro/blobs/uploads/", nil, nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status, string(r.body))
	assert.Equal(t, "UNSUPPORTED", r.code())
	r = h.do("PUT", "/v2/ro/manifests/v2", map[string]string{"Content-Type": v1.MediaTypeImageManifest}, []byte("{}"))
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)

	// a read-only hub writes nothing into its directory (which may be read-only itself)
	ro := t.TempDir()
	require.NoError(t, os.CopyFS(ro, os.DirFS(filepath.Join(dir))))
	require.NoError(t, os.Remove(filepath.Join(ro, lockFile)))
	require.NoError(t, os.Remove(filepath.Join(ro, intentFile)))
	before := countEntries(t, ro)
	srv, ts2 := newTestServer(t, Config{RootDirectory: ro, ReadOnly: true})
	h2 := &hub{t: t, url: ts2.URL}
	assert.Equal(t, http.StatusOK, h2.do("GET", "/v2/ro/manifests/v1", nil, nil).status)
	assert.Equal(t, http.StatusMethodNotAllowed, h2.do("DELETE", "/v2/ro/manifests/v1", nil, nil).status)
	assert.Equal(t, before, countEntries(t, ro))
	_, err := srv.CollectGarbage(context.Background(), GCOptions{})
	assert.ErrorContains(t, err, "read-only")
}

func countEntries(t *testing.T, dir string) int {
	n := 0
	require.NoError(t, filepath.WalkDir(dir, func(string, fs.DirEntry, error) error { n++; return nil }))
	return n
}

// TestLargeChunkedUpload crosses the upload writer's write-back and early-sync thresholds
// within and across chunks, with a resume (new writer in append mode) per chunk: the
// first chunk ends while its background fdatasync may still run.
func TestLargeChunkedUpload(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	b := randomBytes(durable.EarlySync*2 + 20<<20 + 12345)
	d := digest.FromBytes(b)
	r := h.do("POST", "/v2/large/blobs/uploads/", nil, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	loc := h.location(r)
	cuts := []int{0, durable.EarlySync + 9<<20, durable.EarlySync + 9<<20 + 1, durable.EarlySync*2 + 19<<20, len(b)}
	for i := 0; i+1 < len(cuts); i++ {
		chunk := b[cuts[i]:cuts[i+1]]
		r = h.do("PATCH", loc, map[string]string{"Content-Type": "application/octet-stream",
			"Content-Range": fmt.Sprintf("%d-%d", cuts[i], cuts[i+1]-1), "Content-Length": strconv.Itoa(len(chunk))}, chunk)
		require.Equal(t, http.StatusAccepted, r.status, string(r.body))
		loc = h.location(r)
	}
	r = h.do("PUT", withQuery(loc, "digest="+d.String()), nil, nil)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = h.do("GET", "/v2/large/blobs/"+d.String(), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, d, digest.FromBytes(r.body))
}

// TestManifestShapes: OCI 1.1 shapes a registry must accept.
func TestManifestShapes(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd := h.pushBlob("shapes", cfg)

	// no layers
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest, Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))}, Layers: []v1.Descriptor{}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	r := h.putManifest("shapes", "nolayers", mb, v1.MediaTypeImageManifest)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))

	// an index with an artifactType and annotations, and an index of that index
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, ArtifactType: "application/vnd.example.index",
		Manifests:   []v1.Descriptor{{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}},
		Annotations: map[string]string{"k": "v"}}
	idx.SchemaVersion = 2
	ib, _ := json.MarshalIndent(idx, "", "\t")
	r = h.putManifest("shapes", digest.FromBytes(ib).String(), ib, v1.MediaTypeImageIndex)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	nested := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{{MediaType: v1.MediaTypeImageIndex, Digest: digest.FromBytes(ib), Size: int64(len(ib))}}}
	nested.SchemaVersion = 2
	nb, _ := json.Marshal(nested)
	r = h.putManifest("shapes", "nested", nb, v1.MediaTypeImageIndex)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = h.do("GET", "/v2/shapes/manifests/nested", map[string]string{"Accept": v1.MediaTypeImageIndex}, nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, nb, r.body)

	// docker schema2 manifests still work
	dm := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":"%s"},"layers":[]}`, len(cfg), cd)
	r = h.putManifest("shapes", "docker", []byte(dm), "application/vnd.docker.distribution.manifest.v2+json")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = h.do("GET", "/v2/shapes/manifests/docker", nil, nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "application/vnd.docker.distribution.manifest.v2+json", r.header.Get("Content-Type"))
}

// TestBlobServing covers blob GET/HEAD details, served from the file on disk hubs.
func TestBlobServing(t *testing.T) {
	for _, inmem := range []bool{false, true} {
		t.Run(fmt.Sprintf("inmem=%v", inmem), func(t *testing.T) {
			_, ts := newTestServer(t, Config{InMemory: inmem})
			h := &hub{t: t, url: ts.URL}
			b := randomBytes(100000)
			d := h.pushBlob("serve/a", b)

			r := h.do("HEAD", "/v2/serve/a/blobs/"+d.String(), nil, nil)
			require.Equal(t, http.StatusOK, r.status)
			assert.Equal(t, "100000", r.header.Get("Content-Length"))
			assert.Equal(t, d.String(), r.header.Get("Docker-Content-Digest"))
			assert.Equal(t, `"`+d.String()+`"`, r.header.Get("Etag"))
			assert.Empty(t, r.body)

			r = h.do("GET", "/v2/serve/a/blobs/"+d.String(), nil, nil)
			require.Equal(t, http.StatusOK, r.status)
			assert.Equal(t, b, r.body)
			assert.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))

			r = h.do("GET", "/v2/serve/a/blobs/"+d.String(), map[string]string{"Range": "bytes=99990-"}, nil)
			require.Equal(t, http.StatusPartialContent, r.status)
			assert.Equal(t, b[99990:], r.body)
			assert.Equal(t, "bytes 99990-99999/100000", r.header.Get("Content-Range"))

			r = h.do("GET", "/v2/serve/a/blobs/"+d.String(), map[string]string{"If-None-Match": `"` + d.String() + `"`}, nil)
			assert.Equal(t, http.StatusNotModified, r.status)

			// another repository does not see the blob until it is mounted or pushed there
			r = h.do("GET", "/v2/serve/b/blobs/"+d.String(), nil, nil)
			assert.Equal(t, http.StatusNotFound, r.status)
			assert.Equal(t, "BLOB_UNKNOWN", r.code())

			// deleted from the repository: gone
			require.Equal(t, http.StatusAccepted, h.do("DELETE", "/v2/serve/a/blobs/"+d.String(), nil, nil).status)
			r = h.do("GET", "/v2/serve/a/blobs/"+d.String(), nil, nil)
			assert.Equal(t, http.StatusNotFound, r.status)
			assert.Equal(t, "BLOB_UNKNOWN", r.code())
		})
	}
}

// TestUploadContentTypes: upload bodies are taken as bytes whatever their Content-Type.
func TestUploadContentTypes(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	h := &hub{t: t, url: ts.URL}
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/vnd.oci.image.layer.v1.tar+gzip"} {
		b := []byte("a=1&b=2&digest=sha256:" + strings.Repeat("0", 64) + ct)
		d := digest.FromBytes(b)
		r := h.do("POST", "/v2/ct/blobs/uploads/", nil, nil)
		require.Equal(t, http.StatusAccepted, r.status)
		r = h.do("PATCH", h.location(r), map[string]string{"Content-Type": ct}, b[:10])
		require.Equal(t, http.StatusAccepted, r.status, ct+": "+string(r.body))
		r = h.do("PUT", withQuery(h.location(r), "digest="+d.String()), map[string]string{"Content-Type": ct}, b[10:])
		require.Equal(t, http.StatusCreated, r.status, ct+": "+string(r.body))
		r = h.do("GET", "/v2/ct/blobs/"+d.String(), nil, nil)
		assert.Equal(t, b, r.body, ct)
	}
}
