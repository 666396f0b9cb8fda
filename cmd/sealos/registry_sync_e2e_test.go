package main

// End-to-end tests of sealos registry sync and copy with the real binary between two hubs
// run by `sealos registry serve`.

import (
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/registry/client"
)

func syncPushRandom(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(4096, 2)
	require.NoError(t, err)
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	require.NoError(t, remote.Write(r, img))
	d, err := img.Digest()
	require.NoError(t, err)
	return d.String()
}

func syncExitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestRegistrySyncAndCopyE2E(t *testing.T) {
	bin := sealosBin(t)
	src := serveHub(t, bin)
	dst := serveHub(t, bin)
	want := map[string]string{
		"library/nginx:1.27": syncPushRandom(t, src+"/library/nginx:1.27"),
		"library/nginx:1.26": syncPushRandom(t, src+"/library/nginx:1.26"),
		"team/app:v1":        syncPushRandom(t, src+"/team/app:v1"),
	}

	r := sealos(t, nil, "", "registry", "sync", "-o", "json", src, dst+"/docker.io")
	require.NoError(t, r.err, r.stderr)
	var rep client.SyncReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	assert.Equal(t, 3, rep.Copied)
	assert.Contains(t, r.stderr, "copied  "+src+"/team/app:v1")
	for ref, d := range want {
		got, err := remote.Head(syncMustParse(t, dst+"/docker.io/"+ref))
		require.NoError(t, err, ref)
		assert.Equal(t, d, got.Digest.String())
	}

	// nothing changed
	r = sealos(t, nil, "", "registry", "sync", "-o", "json", "--repo", "library/.*", "--tags", "^1\\.27$", src, dst+"/docker.io")
	require.NoError(t, r.err, r.stderr)
	rep = client.SyncReport{}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	assert.Equal(t, 1, rep.Skipped)
	assert.Equal(t, int64(1), rep.DestinationHeads)
	assert.Equal(t, rep.DestinationHeads, rep.DestinationRequests, "one HEAD and nothing else")

	// copy, text summary
	r = sealos(t, nil, "", "registry", "copy", src+"/team/app:v1", dst+"/copied/app")
	require.NoError(t, r.err, r.stderr)
	assert.Contains(t, r.stdout, "1 copied, 0 skipped, 0 failed")
	got, err := remote.Head(syncMustParse(t, dst+"/copied/app:v1"))
	require.NoError(t, err)
	assert.Equal(t, want["team/app:v1"], got.Digest.String())

	// a failed image: exit status 1, the error on stderr
	r = sealos(t, nil, "", "registry", "copy", src+"/team/app:missing", dst+"/copied/app")
	assert.Equal(t, 1, syncExitCode(r.err))
	assert.Contains(t, r.stderr, "team/app:missing")
	r = sealos(t, nil, "", "registry", "sync", src+"/no/such", dst)
	assert.Equal(t, 1, syncExitCode(r.err))
}

func syncMustParse(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	require.NoError(t, err)
	return r
}
