package store

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/require"
)

// seedMany writes n small images, two names each.
func seedMany(b *testing.B, s *Store, n int) {
	b.Helper()
	ctx := context.Background()
	for i := range n {
		img, err := random.Image(256, 1)
		require.NoError(b, err)
		ref := fmt.Sprintf("localhost:5000/bench/img%d:v1", i)
		require.NoError(b, s.WriteImage(ctx, ref, img))
		require.NoError(b, s.Tag(ctx, ref, fmt.Sprintf("localhost:5000/bench/img%d:latest", i)))
	}
}

func BenchmarkList500(b *testing.B) {
	s := newStore(b)
	seedMany(b, s, 500)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		list, err := s.List(ctx)
		if err != nil || len(list) != 1000 {
			b.Fatal(err, len(list))
		}
	}
}

func BenchmarkResolve500(b *testing.B) {
	s := newStore(b)
	seedMany(b, s, 500)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Resolve(ctx, "localhost:5000/bench/img250:latest"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTag(b *testing.B) {
	s := newStore(b)
	seedMany(b, s, 50)
	ctx := context.Background()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		if err := s.Tag(ctx, "localhost:5000/bench/img1:v1", fmt.Sprintf("x:%d", i%20)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteImage64MiB writes a fresh image with one 64 MiB layer (digest checked,
// fsynced) per iteration.
func BenchmarkWriteImage64MiB(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	const size = 64 << 20
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		img, err := random.Image(size, 1)
		require.NoError(b, err)
		// Materialize the random layer so the benchmark measures the store, not the RNG.
		ls, _ := img.Layers()
		rc, _ := ls[0].Compressed()
		_, _ = io.Copy(io.Discard, rc)
		rc.Close()
		b.StartTimer()
		if err := s.WriteImage(ctx, "big:v1", img); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSaveOCI64MiB(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	img, err := random.Image(64<<20, 1)
	require.NoError(b, err)
	require.NoError(b, s.WriteImage(ctx, "big:v1", img))
	b.SetBytes(64 << 20)
	b.ResetTimer()
	for b.Loop() {
		if err := s.Save(ctx, io.Discard, FormatOCIArchive, "big:v1"); err != nil {
			b.Fatal(err)
		}
	}
}
