package tree

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type ent struct {
	name, body, link string
	typ              byte
	mode             int64
}

func mkTar(t *testing.T, ents ...ent) *bytes.Buffer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		require.NoError(t, tw.WriteHeader(h))
		if e.typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return &buf
}

func TestUntarRefusesEscapes(t *testing.T) {
	for name, ents := range map[string][]ent{
		"dotdot":         {{name: "../evil", body: "x", typ: tar.TypeReg}},
		"nested dotdot":  {{name: "a/../../evil", body: "x", typ: tar.TypeReg}},
		"absolute":       {{name: "/etc/evil", body: "x", typ: tar.TypeReg}},
		"hardlink out":   {{name: "a", typ: tar.TypeLink, link: "../../etc/passwd"}},
		"hardlink abs":   {{name: "a", typ: tar.TypeLink, link: "/etc/passwd"}},
		"link via slink": {{name: "s", typ: tar.TypeSymlink, link: "/etc"}, {name: "a", typ: tar.TypeLink, link: "s/passwd"}},
	} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "root")
			err := Untar(mkTar(t, ents...), dir)
			require.Error(t, err)
			_, statErr := os.Stat(filepath.Join(parent, "evil"))
			assert.True(t, os.IsNotExist(statErr))
		})
	}
}

func TestUntarNeverWritesThroughSymlink(t *testing.T) {
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	require.NoError(t, os.Mkdir(outside, 0o755))
	dir := filepath.Join(parent, "root")
	// As mutate.Extract emits it: the upper layer's symlink first, a lower layer's file below it after.
	m, err := UntarManifest(mkTar(t,
		ent{name: "etc", typ: tar.TypeSymlink, link: outside},
		ent{name: "etc/passwd", body: "pwned", typ: tar.TypeReg},
		ent{name: "ok/file", body: "fine", typ: tar.TypeReg, mode: 0o755},
		ent{name: "ok", typ: tar.TypeDir, mode: 0o750},
		ent{name: "a/b/c", body: "deep", typ: tar.TypeReg},
		ent{name: "a/b/hard", typ: tar.TypeLink, link: "a/b/c"},
		ent{name: "a/.wh.gone", typ: tar.TypeReg},
	), dir)
	require.NoError(t, err)
	scanned, err := Scan(dir)
	require.NoError(t, err)
	assert.Equal(t, scanned.Entries, m.Entries, "the manifest made while extracting is the one a scan gives")
	assert.NotContains(t, m.Map(), "a/.wh.gone")
	_, err = os.Stat(filepath.Join(outside, "passwd"))
	assert.True(t, os.IsNotExist(err), "nothing written outside")
	b, err := os.ReadFile(filepath.Join(dir, "ok", "file"))
	require.NoError(t, err)
	assert.Equal(t, "fine", string(b))
	st, _ := os.Stat(filepath.Join(dir, "ok", "file"))
	assert.Equal(t, os.FileMode(0o755), st.Mode().Perm())
	st, _ = os.Stat(filepath.Join(dir, "ok"))
	assert.Equal(t, os.FileMode(0o750), st.Mode().Perm())
}

func TestCompare(t *testing.T) {
	old := &Manifest{Entries: []Entry{
		{Path: "a", Type: TypeDir, Mode: 0o755},
		{Path: "a/f", Type: TypeFile, Mode: 0o644, Sum: "1"},
		{Path: "b", Type: TypeFile, Mode: 0o644, Sum: "2"},
		{Path: "c", Type: TypeDir, Mode: 0o755},
		{Path: "c/x", Type: TypeFile, Mode: 0o644, Sum: "3"},
		{Path: "same", Type: TypeFile, Mode: 0o644, Sum: "4"},
	}}
	new := &Manifest{Entries: []Entry{
		{Path: "a", Type: TypeDir, Mode: 0o755},
		{Path: "a/f", Type: TypeFile, Mode: 0o644, Sum: "changed"},
		{Path: "b", Type: TypeDir, Mode: 0o755},
		{Path: "new", Type: TypeFile, Mode: 0o600, Sum: "5"},
		{Path: "same", Type: TypeFile, Mode: 0o644, Sum: "4"},
	}}
	d := Compare(old, new)
	var sent []string
	for _, e := range d.Send {
		sent = append(sent, e.Path)
	}
	assert.Equal(t, []string{"a/f", "b", "new"}, sent)
	assert.Equal(t, []string{"b", "c"}, d.Remove, "c/x is covered by c")
	assert.True(t, Compare(new, new).Empty())
	assert.Len(t, Compare(nil, new).Send, 5)
}

func TestRenderAndManifest(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etc", "a.conf.tmpl"), []byte("domain={{ .registryDomain }} missing={{ .nope }} up={{ upper .x }}\n"), 0o640))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bin", "b.tmpl"), []byte("{{ .x }}"), 0o644))
	tr, err := New(dir)
	require.NoError(t, err)
	assert.Equal(t, []string{"etc/a.conf.tmpl"}, tr.Templates(), "only etc/, scripts/, manifests/")
	r, err := tr.Render(map[string]string{"registryDomain": "sealos.hub", "x": "y"})
	require.NoError(t, err)
	rc, err := r.Open("etc/a.conf")
	require.NoError(t, err)
	var b bytes.Buffer
	_, _ = b.ReadFrom(rc)
	assert.Equal(t, "domain=sealos.hub missing= up=Y\n", b.String())
	m := r.Manifest().Map()
	assert.Equal(t, uint32(0o640), m["etc/a.conf"].Mode)
	assert.Contains(t, m, "etc/a.conf.tmpl")
	assert.NotEqual(t, tr.Manifest().Digest(), r.Manifest().Digest())
	_, err = os.Stat(filepath.Join(dir, "etc", "a.conf"))
	assert.True(t, os.IsNotExist(err), "rendering never writes into the base")

	_, err = (&Tree{Base: dir, BaseManifest: &Manifest{Entries: []Entry{{Path: "etc/bad.tmpl", Type: TypeFile}}}}).Render(nil)
	assert.Error(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etc", "bad.tmpl"), []byte("{{ .x "), 0o644))
	tr, _ = New(dir)
	_, err = tr.Render(nil)
	assert.ErrorContains(t, err, "etc/bad.tmpl")
}
