// Command benchsync seeds a registry with the repositories `make bench-sync` copies:
// -repos repositories bench/rNN, each with tag v1 (-layers layers of -size bytes) and tag
// v2 (v1 plus one 1 MiB layer). Layers are tars of pseudo-random bytes in stored (level 0)
// gzip, so nothing can compress them or wants to recompress them, and the same seed gives
// the same digests.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func layer(rng *rand.ChaCha8, size int) v1.Layer {
	data := make([]byte, size)
	_, _ = rng.Read(data)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	_ = tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg})
	_, _ = tw.Write(data)
	_ = tw.Close()
	// gzip without compression: a valid gzip layer (what registries mostly hold), so no
	// client recompresses it on the way, cheap to make.
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.NoCompression)
	_, _ = zw.Write(b.Bytes())
	_ = zw.Close()
	return static.NewLayer(z.Bytes(), types.OCILayer)
}

func main() {
	var (
		reg    = flag.String("registry", "", "host:port of the registry to fill")
		repos  = flag.Int("repos", 20, "repositories")
		layers = flag.Int("layers", 3, "layers of tag v1")
		size   = flag.Int("size", 16<<20, "bytes per layer")
		seed   = flag.Uint64("seed", 1, "random seed")
		jobs   = flag.Int("jobs", 4, "repositories pushed at once")
	)
	flag.Parse()
	if *reg == "" {
		log.Fatal("-registry is required")
	}
	sem := make(chan struct{}, *jobs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 1; i <= *repos; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			var key [32]byte
			copy(key[:], fmt.Sprintf("bench-sync-%d-%d", *seed, i))
			rng := rand.NewChaCha8(key)
			var ls []v1.Layer
			for j := 0; j < *layers; j++ {
				ls = append(ls, layer(rng, *size))
			}
			base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
			v1img, err := mutate.AppendLayers(base, ls...)
			if err != nil {
				log.Fatal(err)
			}
			v2img, err := mutate.AppendLayers(v1img, layer(rng, 1<<20))
			if err != nil {
				log.Fatal(err)
			}
			for tag, img := range map[string]v1.Image{"v1": v1img, "v2": v2img} {
				ref, err := name.ParseReference(fmt.Sprintf("%s/bench/r%02d:%s", *reg, i, tag), name.Insecure)
				if err != nil {
					log.Fatal(err)
				}
				if err := remote.Write(ref, img, remote.WithJobs(4)); err != nil {
					log.Fatal(err)
				}
				d, _ := img.Digest()
				mu.Lock()
				fmt.Printf("bench/r%02d:%s %s\n", i, tag, d)
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
}
