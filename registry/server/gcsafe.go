package server

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"

	"github.com/opencontainers/go-digest"
)

// Why a push that races a garbage collection is either refused or stored whole.
//
// A collection (gc.go) holds the write gate exclusively (gate.go: an exclusive flock
// that every write request of every hub on the directory holds shared, plus inproc
// for this process) from the moment it starts marking until every deletion is done.
// Every manifest PUT holds the gate shared for its whole life. So for a PUT, a
// collection is either entirely before its check or entirely after its 201:
//
//   - after: the manifest is stored (its revision link is written before the 201), so
//     the collection marks it and every blob it names (manifests are never deleted by a
//     collection unless untagged and asked to, and then their blobs only if no other
//     manifest names them);
//   - before: the blobs it deleted are gone from storage when the PUT checks, and
//     manifestBlobsStored, which asks the storage (never distribution's blob descriptor
//     cache, which may remember a deleted blob), refuses the PUT with
//     MANIFEST_BLOB_UNKNOWN. The client uploads the blobs again and retries.
//
// A client that saw a blob with HEAD before a collection and names it in a manifest
// after falls in the second case: the PUT fails cleanly, nothing acknowledged is lost.
// Blob uploads are safe the same way: placing a blob and linking it happen inside one
// write request (blobupload.go), and distribution's commit too.
//
// Besides, after a collection every hub takes a fresh App (refreshAfterGC), so HEADs
// stop reporting deleted blobs and clients upload them again instead of failing.

// manifestBlobsStored checks that the config and layers a manifest PUT names (those
// without URLs: distribution requires those to be stored) are in the storage. It runs
// while the request holds the write gate. It returns false after answering 400
// MANIFEST_BLOB_UNKNOWN. What it cannot judge (no JSON, too large, an alias it cannot
// resolve) and what checkManifest refuses as MANIFEST_INVALID (that answer comes
// first, as from distribution) it leaves to the checks after it.
func (s *Server) manifestBlobsStored(w http.ResponseWriter, r *http.Request, repo string) bool {
	if s.cfg.AllowSparseIndex {
		return true // missing content is accepted on purpose
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestLen+1))
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	if err != nil || len(body) > maxManifestLen {
		return true
	}
	var m manifestRefs
	if json.Unmarshal(body, &m) != nil || m.badDescriptor() != nil {
		return true
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); v2Manifests[ct] &&
		(m.SchemaVersion == nil || *m.SchemaVersion != 2) {
		return true
	}
	ctx := r.Context()
	var missing digest.Digest
	for _, d := range m.blobs() {
		if len(d.URLs) > 0 {
			continue
		}
		stored := d.Digest
		if stored.Algorithm() != digest.Canonical {
			c, ok := resolveLink(ctx, s.driver, blobLink(repo, stored))
			if !ok {
				continue
			}
			stored = c
		}
		fi, err := s.driver.Stat(ctx, blobData(stored))
		switch {
		case err != nil && isNotFound(err):
			if missing == "" {
				missing = d.Digest
			}
		case err == nil && fi.Size() != d.Size:
			return true // MANIFEST_INVALID
		}
	}
	if missing != "" {
		writeError(w, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", map[string]string{"digest": missing.String()})
		return false
	}
	return true
}
