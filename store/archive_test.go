package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/testtool"
)

func testIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: randomImage(t, 300, 2), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: randomImage(t, 300, 1), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
}

func names(t testing.TB, s *Store) map[string]v1.Hash {
	t.Helper()
	list, err := s.List(context.Background())
	require.NoError(t, err)
	out := map[string]v1.Hash{}
	for _, e := range list {
		out[e.Name] = e.Digest
	}
	return out
}

func saveToFile(t testing.TB, s *Store, format string, refs ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "out.tar")
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, s.Save(context.Background(), f, format, refs...))
	require.NoError(t, f.Close())
	return p
}

func TestSaveLoadOCIKeepsDigests(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	img := randomImage(t, 1000, 3)
	require.NoError(t, src.WriteImage(ctx, "app:v1", img))
	require.NoError(t, src.Tag(ctx, "app:v1", "localhost:5000/app:v1"))
	require.NoError(t, src.WriteIndex(ctx, "multi:v1", testIndex(t)))
	p := saveToFile(t, src, FormatOCIArchive, "app:v1", "localhost:5000/app:v1", "multi:v1")

	dst := newStore(t)
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	loaded, err := dst.Load(ctx, f)
	require.NoError(t, err)
	sort.Strings(loaded)
	assert.Equal(t, []string{"docker.io/library/app:v1", "docker.io/library/multi:v1", "localhost:5000/app:v1"}, loaded)
	assert.Equal(t, names(t, src), names(t, dst))

	got, err := dst.Image(ctx, "app:v1")
	require.NoError(t, err)
	require.NoError(t, validateImage(got))
	ii, err := dst.ImageIndex(ctx, "multi:v1")
	require.NoError(t, err)
	im, err := ii.IndexManifest()
	require.NoError(t, err)
	for _, d := range im.Manifests {
		c, err := ii.Image(d.Digest)
		require.NoError(t, err)
		require.NoError(t, validateImage(c))
	}
}

func TestLoadFromStreamAndGzip(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	require.NoError(t, src.WriteImage(ctx, "app:v1", randomImage(t, 500, 2)))
	var plain bytes.Buffer
	require.NoError(t, src.Save(ctx, &plain, "", "app:v1"))

	dst := newStore(t)
	got, err := dst.Load(ctx, bytes.NewReader(plain.Bytes())) // not a file: spooled
	require.NoError(t, err)
	assert.Equal(t, []string{"docker.io/library/app:v1"}, got)
	assert.Equal(t, names(t, src), names(t, dst))

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(plain.Bytes())
	require.NoError(t, zw.Close())
	dst2 := newStore(t)
	_, err = dst2.Load(ctx, &gz)
	require.NoError(t, err)
	assert.Equal(t, names(t, src), names(t, dst2))

	// Spooled temporaries are gone.
	ents, err := os.ReadDir(filepath.Join(dst.Dir(), ".sealos", "tmp"))
	require.NoError(t, err)
	assert.Empty(t, ents)

	_, err = newStore(t).Load(ctx, bytes.NewReader([]byte("not a tar at all, definitely not")))
	assert.Error(t, err)
}

func TestSaveLoadDockerArchive(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	a := randomImage(t, 400, 2)
	b := randomImage(t, 400, 1)
	require.NoError(t, src.WriteImage(ctx, "app:v1", a))
	require.NoError(t, src.Tag(ctx, "app:v1", "quay.io/x/app:v2"))
	require.NoError(t, src.WriteImage(ctx, "other:v1", b))
	p := saveToFile(t, src, FormatDockerArchive, "app:v1", "quay.io/x/app:v2", "other:v1")

	// manifest.json with RepoTags, docker style.
	mf := readDockerManifest(t, p)
	var tags []string
	for _, e := range mf {
		tags = append(tags, e.RepoTags...)
	}
	sort.Strings(tags)
	assert.Equal(t, []string{"app:v1", "other:v1", "quay.io/x/app:v2"}, tags)
	assert.Len(t, mf, 2, "one entry per image")

	dst := newStore(t)
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	loaded, err := dst.Load(ctx, f)
	require.NoError(t, err)
	sort.Strings(loaded)
	assert.Equal(t, []string{"docker.io/library/app:v1", "docker.io/library/other:v1", "quay.io/x/app:v2"}, loaded)
	for ref, want := range map[string]v1.Image{"app:v1": a, "quay.io/x/app:v2": a, "other:v1": b} {
		got, err := dst.Image(ctx, ref)
		require.NoError(t, err)
		require.NoError(t, validateImage(got))
		wc, _ := want.ConfigName()
		gc, _ := got.ConfigName()
		assert.Equal(t, wc, gc, "image ID of %s", ref)
	}
}

type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func readDockerManifest(t testing.TB, p string) []dockerManifestEntry {
	t.Helper()
	out, err := exec.Command("tar", "-xOf", p, "manifest.json").Output()
	require.NoError(t, err)
	var mf []dockerManifestEntry
	require.NoError(t, json.Unmarshal(out, &mf))
	return mf
}

func TestSkopeoReadsSavedArchives(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		testtool.Missing(t, "skopeo is not installed (apt-get install skopeo)")
	}
	ctx := context.Background()
	s := newStore(t)
	img := randomImage(t, 800, 2)
	require.NoError(t, s.WriteImage(ctx, "app:v1", img))
	want, _ := img.Digest()
	wantCfg, _ := img.ConfigName()

	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			p := saveToFile(t, s, format, "app:v1")
			out, err := exec.Command("skopeo", "inspect", format+":"+p).CombinedOutput()
			require.NoError(t, err, "%s", out)
			var res struct {
				Digest string
				Layers []string
			}
			require.NoError(t, json.Unmarshal(out, &res), "%s", out)
			assert.Len(t, res.Layers, 2)
			if format == FormatOCIArchive {
				assert.Equal(t, want.String(), res.Digest)
			}
			cfgOut, err := exec.Command("skopeo", "inspect", "--raw", "--config", format+":"+p).CombinedOutput()
			require.NoError(t, err, "%s", cfgOut)
			h, _, err := v1.SHA256(bytes.NewReader(cfgOut))
			require.NoError(t, err)
			assert.Equal(t, wantCfg, h, "config digest")
		})
	}
}

func TestSaveErrors(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	require.NoError(t, s.WriteImage(ctx, "app:v1", randomImage(t, 100, 1)))
	var buf bytes.Buffer
	assert.ErrorIs(t, s.Save(ctx, &buf, "", "missing:v1"), ErrNotFound)
	assert.ErrorContains(t, s.Save(ctx, &buf, "zip", "app:v1"), "unknown format")
	assert.Error(t, s.Save(ctx, &buf, ""))
}

func TestLoadDockerArchiveFromStream(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	require.NoError(t, src.WriteImage(ctx, "app:v1", randomImage(t, 300, 2)))
	require.NoError(t, src.WriteImage(ctx, "db:v1", randomImage(t, 300, 1)))
	var buf bytes.Buffer
	require.NoError(t, src.Save(ctx, &buf, FormatDockerArchive, "app:v1", "db:v1"))
	dst := newStore(t)
	got, err := dst.Load(ctx, bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	sort.Strings(got)
	assert.Equal(t, []string{"docker.io/library/app:v1", "docker.io/library/db:v1"}, got)
	for _, ref := range got {
		img, err := dst.Image(ctx, ref)
		require.NoError(t, err)
		require.NoError(t, validateImage(img))
	}
	ents, err := os.ReadDir(filepath.Join(dst.Dir(), ".sealos", "tmp"))
	require.NoError(t, err)
	assert.Empty(t, ents, "the spool is removed")
}
