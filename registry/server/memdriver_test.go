package server

import (
	"encoding/json"
	"net/http"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Names that are also names of a directory's children in distribution's layout (a tag
// "index" or "current", a repository "a/a") are listed and deleted like any other, in
// memory too (memdriver.go).
func TestNamesOfLayoutChildren(t *testing.T) {
	for _, inMemory := range []bool{false, true} {
		_, ts := newTestServer(t, Config{InMemory: inMemory})
		h := &hub{t: t, url: ts.URL}
		for _, repo := range []string{"a/a", "tags/index"} {
			_, mb := h.image(repo, 1)
			for _, tag := range []string{"index", "current", "v1"} {
				require.Equal(t, http.StatusCreated, h.putManifest(repo, tag, mb, v1.MediaTypeImageManifest).status)
			}
			var list struct{ Tags []string }
			r := h.do("GET", "/v2/"+repo+"/tags/list", nil, nil)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			require.NoError(t, json.Unmarshal(r.body, &list))
			assert.Equal(t, []string{"current", "index", "v1"}, list.Tags, "inMemory=%v", inMemory)

			require.Equal(t, http.StatusAccepted, h.do("DELETE", "/v2/"+repo+"/manifests/index", nil, nil).status)
			r = h.do("GET", "/v2/"+repo+"/tags/list", nil, nil)
			require.NoError(t, json.Unmarshal(r.body, &list))
			assert.Equal(t, []string{"current", "v1"}, list.Tags, "inMemory=%v", inMemory)
		}
		var cat struct{ Repositories []string }
		r := h.do("GET", "/v2/_catalog", nil, nil)
		require.NoError(t, json.Unmarshal(r.body, &cat))
		assert.Equal(t, []string{"a/a", "tags/index"}, cat.Repositories, "inMemory=%v", inMemory)
	}
}
