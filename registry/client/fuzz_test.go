package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/store"
)

var (
	hostileCfg   = []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	hostileLayer = []byte("layer bytes")
	// hostileImage is a valid manifest of the two blobs hostileRegistry holds
	hostileImage = fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		sha(hostileCfg), len(hostileCfg), sha(hostileLayer), len(hostileLayer))
)

// hostileRegistry serves hostile/app: its tag answers top (with Content-Type topType when
// not empty), any digest answers child, and its blobs are hostileCfg and hostileLayer.
func hostileRegistry(top, topType, child string) *httptest.Server {
	blobs := map[string][]byte{sha(hostileCfg): hostileCfg, sha(hostileLayer): hostileLayer}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/v2/":
		case strings.HasPrefix(p, "/v2/hostile/app/manifests/"):
			body, ct := top, topType
			if ref := strings.TrimPrefix(p, "/v2/hostile/app/manifests/"); strings.Contains(ref, ":") {
				body, ct = child, ""
			}
			if ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			w.Header().Set("Docker-Content-Digest", sha([]byte(body)))
			_, _ = w.Write([]byte(body))
		case strings.HasPrefix(p, "/v2/hostile/app/blobs/"):
			b, ok := blobs[strings.TrimPrefix(p, "/v2/hostile/app/blobs/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// FuzzPullFromHostileRegistry pulls from a registry that answers the tag with any bytes
// under any content type, and any digest with a second document. The registry holds two
// blobs. Whatever it serves, pull returns (no panic, no hang), and when it succeeds the
// store holds the image under its name with every blob it refers to.
func FuzzPullFromHostileRegistry(f *testing.F) {
	image := hostileImage
	index := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",`+
		`"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,`+
		`"platform":{"architecture":"amd64","os":"linux"}}]}`, sha([]byte(image)), len(image))
	f.Add(image, "application/vnd.oci.image.manifest.v1+json", "", false)
	f.Add(index, "application/vnd.oci.image.index.v1+json", image, false)
	f.Add(index, "application/vnd.oci.image.index.v1+json", image, true)
	f.Add(index, "", index, true) // an index that names itself... by another digest
	f.Add(`{"schemaVersion":1,"name":"x","tag":"v1","fsLayers":[]}`, "application/vnd.docker.distribution.manifest.v1+json", "", false)
	f.Add(strings.Replace(image, `"size":11`, `"size":-1`, 1), "", "", false)
	f.Add(strings.Replace(image, `"layers":[`, `"layers":[{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"sha256:`+strings.Repeat("0", 64)+`","size":1,"urls":["http://x"]},`, 1), "", "", false)
	f.Add(`{"manifests":[{"digest":"sha256:../../../etc"}]}`, "application/vnd.oci.image.index.v1+json", "", true)

	f.Fuzz(func(t *testing.T, top, topType, child string, all bool) {
		reg := hostileRegistry(top, topType, child)
		defer reg.Close()
		st, err := store.Open(t.TempDir())
		require.NoError(t, err)
		ref := strings.TrimPrefix(reg.URL, "http://") + "/hostile/app:v1"
		ctx := context.Background()
		if _, err := client.Pull(ctx, st, ref, all, client.PolicyAlways, client.WithRetry(0, 0)); err != nil {
			return
		}
		desc, err := st.Resolve(ctx, ref)
		require.NoError(t, err, "pull succeeded but the store cannot resolve the name")
		if desc.MediaType.IsIndex() {
			idx, err := st.ImageIndex(ctx, ref)
			require.NoError(t, err)
			m, err := idx.IndexManifest()
			require.NoError(t, err)
			for _, c := range m.Manifests {
				require.True(t, st.HasBlob(c.Digest), "child %s missing after a successful pull", c.Digest)
			}
			return
		}
		img, err := st.Image(ctx, ref)
		require.NoError(t, err)
		layers, err := img.Layers()
		require.NoError(t, err)
		for _, l := range layers {
			d, err := l.Digest()
			require.NoError(t, err)
			mt, err := l.MediaType()
			require.NoError(t, err)
			if mt.IsDistributable() {
				require.True(t, st.HasBlob(d), "layer %s missing after a successful pull", d)
			}
		}
	})
}

// A negative descriptor size escapes the size check of the store's writes, so pull checks
// it first: such a manifest would be stored, and refused by every registry it went to.
func TestPullRefusesNegativeSize(t *testing.T) {
	for name, c := range map[string]struct{ top, child string }{
		"layer": {strings.Replace(hostileImage, `"size":11`, `"size":-1`, 1), ""},
		"index child": {`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` +
			sha([]byte(hostileImage)) + `","size":-5}]}`, hostileImage},
	} {
		t.Run(name, func(t *testing.T) {
			reg := hostileRegistry(c.top, "", c.child)
			defer reg.Close()
			st := openStore(t)
			ref := strings.TrimPrefix(reg.URL, "http://") + "/hostile/app:v1"
			_, err := client.Pull(context.Background(), st, ref, true, client.PolicyAlways, client.WithRetry(0, 0))
			require.ErrorContains(t, err, "negative size")
			_, err = st.Resolve(context.Background(), ref)
			require.ErrorIs(t, err, store.ErrNotFound)
		})
	}
}
