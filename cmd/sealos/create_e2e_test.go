package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/store"
)

// create unpacks an image of the store, mount lists it, rm removes it.
func TestCreateMountRm(t *testing.T) {
	root := t.TempDir()
	st, err := store.Open(root)
	require.NoError(t, err)
	img, err := random.Image(1024, 2)
	require.NoError(t, err)
	require.NoError(t, st.WriteImage(context.Background(), "localhost:5000/apps/web:v1", img))
	r := func(args ...string) result { return sealos(t, nil, "", append([]string{"--root", root}, args...)...) }
	must := func(args ...string) result {
		return mustSealos(t, nil, "", append([]string{"--root", root}, args...)...)
	}

	dir := strings.TrimSpace(must("create", "--short", "localhost:5000/apps/web:v1").stdout)
	assert.Equal(t, filepath.Join(root, "containers", "web-working-container", "rootfs"), dir)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.NotEmpty(t, ents, "the image's files")
	out := must("create", "--name", "second", "localhost:5000/apps/web:v1").stdout
	assert.Contains(t, out, "container second from localhost:5000/apps/web:v1")
	assert.Contains(t, r("create", "--name", "second", "localhost:5000/apps/web:v1").stderr, `container "second" exists`)
	assert.Contains(t, r("create", "nosuch:v1").stderr, "nosuch")

	list := must("mount").stdout
	assert.Contains(t, list, "web-working-container")
	assert.Contains(t, list, "second")
	assert.Equal(t, dir+"\n", must("mount", "web-working-container").stdout)
	var js []map[string]any
	require.NoError(t, json.Unmarshal([]byte(must("mount", "-o", "json").stdout), &js))
	assert.Len(t, js, 2)

	assert.Equal(t, "web-working-container\n", must("rm", "web-working-container").stdout)
	assert.NoDirExists(t, dir)
	res := r("rm", "web-working-container")
	assert.Error(t, res.err)
	assert.Contains(t, res.stderr, "no such container")
	must("umount", "--all")
	assert.Equal(t, "[]\n", must("mount", "-o", "json").stdout)
	_, err = st.Image(context.Background(), "localhost:5000/apps/web:v1")
	assert.NoError(t, err, "the image stays")
}
