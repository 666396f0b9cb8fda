package store

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzLoad loads archives made of a real saved image (oci-archive or docker-archive) whose
// index.json or manifest.json is replaced by the fuzzer's, plus one entry of any name and
// content. Load never panics and never writes outside the store; when it succeeds, every
// name it returns is an image or index the store can read in full.
func FuzzLoad(f *testing.F) {
	ctx := context.Background()
	src, err := Open(f.TempDir())
	require.NoError(f, err)
	require.NoError(f, src.WriteImage(ctx, "app:v1", randomImage(f, 200, 2)))
	require.NoError(f, src.WriteIndex(ctx, "multi:v1", testIndex(f)))
	archives := map[string][]tarEntry{}
	for _, format := range Formats {
		var buf bytes.Buffer
		require.NoError(f, src.Save(ctx, &buf, format, "app:v1", "multi:v1"))
		archives[format] = readEntries(f, buf.Bytes())
	}
	control := map[string]string{FormatOCIArchive: "index.json", FormatDockerArchive: "manifest.json"}
	for format, entries := range archives {
		for _, e := range entries {
			if e.name == control[format] {
				f.Add(format == FormatDockerArchive, string(e.body), "", []byte(nil))
			}
		}
	}
	f.Add(false, `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:`+
		"0000000000000000000000000000000000000000000000000000000000000000"+`","size":1}]}`, "../../escape", []byte("x"))
	f.Add(true, `[{"Config":"../../etc/passwd","RepoTags":["a:b"],"Layers":["/abs"]}]`, "/abs", []byte("y"))
	f.Add(true, `[{"Config":"x","RepoTags":["UPPER:tag"],"Layers":[]}]`, "x", []byte("{}"))

	f.Fuzz(func(t *testing.T, docker bool, control, extraName string, extraBody []byte) {
		format := FormatOCIArchive
		if docker {
			format = FormatDockerArchive
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range archives[format] {
			body := e.body
			if e.name == map[bool]string{false: "index.json", true: "manifest.json"}[docker] && control != "" {
				body = []byte(control)
			}
			require.NoError(t, tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}))
			_, err := tw.Write(body)
			require.NoError(t, err)
		}
		if extraName != "" {
			if tw.WriteHeader(&tar.Header{Name: extraName, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(extraBody))}) == nil {
				_, _ = tw.Write(extraBody)
			}
		}
		require.NoError(t, tw.Close())

		parent := t.TempDir()
		st, err := Open(filepath.Join(parent, "store"))
		require.NoError(t, err)
		loaded, err := st.Load(ctx, bytes.NewReader(buf.Bytes()))
		ents, rerr := os.ReadDir(parent)
		require.NoError(t, rerr)
		require.Len(t, ents, 1, "load wrote beside the store")
		if err != nil {
			return
		}
		for _, n := range loaded {
			d, err := st.Resolve(ctx, n)
			require.NoError(t, err, "load returned %q, which does not resolve", n)
			if d.MediaType.IsIndex() {
				_, err = st.ImageIndex(ctx, n)
				require.NoError(t, err)
				continue
			}
			img, err := st.Image(ctx, n)
			require.NoError(t, err)
			require.NoError(t, validateImage(img), "image %q", n)
		}
	})
}

type tarEntry struct {
	name string
	body []byte
}

func readEntries(t testing.TB, b []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		out = append(out, tarEntry{h.Name, body})
	}
}
