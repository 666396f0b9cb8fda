// Command benchimage writes a directory as a one-layer rootfs cluster image (zstd layer)
// into a sealos store, for hack/bench-apply.sh.
//
//	go run ./apply/internal/benchimage -root ROOT -dir DIR -ref REF
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cluster-image/sealos/apply/applytest"
	"github.com/cluster-image/sealos/apply/tree"
	"github.com/cluster-image/sealos/store"
)

func main() {
	root := flag.String("root", "", "sealos --root")
	dir := flag.String("dir", "", "directory to pack")
	ref := flag.String("ref", "bench/rootfs:v1", "image name")
	flag.Parse()
	if err := run(*root, *dir, *ref); err != nil {
		fmt.Fprintln(os.Stderr, "benchimage:", err)
		os.Exit(1)
	}
}

func run(root, dir, ref string) error {
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tree.Tar(pw, dir)) }()
		return pr, nil
	}, tarball.WithCompression(compression.ZStd), tarball.WithCompressionLevel(1))
	if err != nil {
		return err
	}
	img := applytest.Image(applytest.Config{Labels: applytest.Rootfs()}, layer)
	st, err := store.Open(root)
	if err != nil {
		return err
	}
	return st.WriteImage(context.Background(), ref, img)
}
