// Command benchdata writes the images `make bench-registry` moves: each as an OCI image
// layout of its own (for crane and skopeo) and, with -store, into a sealos store too.
//
// Layers are valid uncompressed tars holding one file of pseudo-random bytes, so nothing
// along the way can compress them, and the same seed gives the same digests.
package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"hash"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cluster-image/sealos/store"
)

func main() {
	var (
		out    = flag.String("out", "", "directory for the OCI layouts (one sub-directory per image)")
		root   = flag.String("store", "", "sealos --root to write the images into as well")
		spec   = flag.String("images", "large=4x256MiB,small=64x1MiB", "name=COUNTxSIZE,...")
		prefix = flag.String("ref-prefix", "bench/", "store references are <prefix><name>:v1")
		seed   = flag.Uint64("seed", 1, "random seed")
	)
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	imgs, err := parseSpec(*spec)
	if err != nil {
		log.Fatal(err)
	}
	var st *store.Store
	if *root != "" {
		if st, err = store.Open(*root); err != nil {
			log.Fatal(err)
		}
	}
	for i, im := range imgs {
		dir := filepath.Join(*out, im.name)
		img, err := writeImage(dir, im, *seed+uint64(i)*1000)
		if err != nil {
			log.Fatalf("%s: %v", im.name, err)
		}
		d, _ := img.Digest()
		if st != nil {
			ref := *prefix + im.name + ":v1"
			if err := st.WriteImage(context.Background(), ref, img); err != nil {
				log.Fatalf("store %s: %v", ref, err)
			}
		}
		fmt.Printf("%s %s %s\n", im.name, dir, d)
	}
}

type imageSpec struct {
	name   string
	layers int
	size   int64
}

func parseSpec(s string) ([]imageSpec, error) {
	var out []imageSpec
	for _, part := range splitComma(s) {
		var im imageSpec
		var n int64
		var unit string
		eq := indexByte(part, '=')
		if eq < 0 {
			return nil, fmt.Errorf("bad image spec %q", part)
		}
		im.name = part[:eq]
		if _, err := fmt.Sscanf(part[eq+1:], "%dx%d%s", &im.layers, &n, &unit); err != nil {
			return nil, fmt.Errorf("bad image spec %q: %v", part, err)
		}
		switch unit {
		case "KiB":
			im.size = n << 10
		case "MiB":
			im.size = n << 20
		case "GiB":
			im.size = n << 30
		default:
			return nil, fmt.Errorf("bad unit in %q", part)
		}
		out = append(out, im)
	}
	return out, nil
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// writeImage streams every layer straight to the layout's blob directory (no layer is
// ever held in memory) and returns the layout image.
func writeImage(dir string, im imageSpec, seed uint64) (v1.Image, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, err
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil, err
	}
	var adds []mutate.Addendum
	for i := 0; i < im.layers; i++ {
		h, size, err := writeLayer(blobs, im.size, seed+uint64(i))
		if err != nil {
			return nil, err
		}
		l := &fileLayer{path: filepath.Join(blobs, h.Hex), h: h, size: size}
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: types.OCIUncompressedLayer})
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	if err := p.AppendImage(img); err != nil {
		return nil, err
	}
	return img, nil
}

// writeLayer writes a tar with one file of size pseudo-random bytes and returns its
// digest (the layer is uncompressed, so digest == diffID).
func writeLayer(blobs string, size int64, seed uint64) (v1.Hash, int64, error) {
	tmp, err := os.CreateTemp(blobs, ".layer-*")
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, h)}
	tw := tar.NewWriter(cw)
	if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data-%d", seed), Mode: 0o644, Size: size, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return v1.Hash{}, 0, err
	}
	if _, err := io.CopyN(tw, &prng{r: rand.NewChaCha8(seedBytes(seed))}, size); err != nil {
		return v1.Hash{}, 0, err
	}
	if err := tw.Close(); err != nil {
		return v1.Hash{}, 0, err
	}
	if err := tmp.Close(); err != nil {
		return v1.Hash{}, 0, err
	}
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sumOf(h))}
	if err := os.Rename(tmp.Name(), filepath.Join(blobs, d.Hex)); err != nil {
		return v1.Hash{}, 0, err
	}
	return d, cw.n, nil
}

func sumOf(h hash.Hash) []byte { return h.Sum(nil) }

func seedBytes(seed uint64) [32]byte {
	var b [32]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	return b
}

type prng struct{ r *rand.ChaCha8 }

func (p *prng) Read(b []byte) (int, error) { return p.r.Read(b) }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// fileLayer is an uncompressed layer in a file whose digest is already known.
type fileLayer struct {
	path string
	h    v1.Hash
	size int64
}

func (l *fileLayer) Digest() (v1.Hash, error)             { return l.h, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)             { return l.h, nil }
func (l *fileLayer) Size() (int64, error)                 { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) { return os.Open(l.path) }
