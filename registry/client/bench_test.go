package client_test

import (
	"context"
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/registry/server"
)

// Hot paths against the in-process hub (filesystem storage, fsync on commit). The whole-tool
// comparison with crane and the stock registry is `make bench-registry`.

func benchImage(b *testing.B, layers int, size int64) (v1.Image, int64) {
	img, err := random.Image(size, int64(layers))
	require.NoError(b, err)
	ls, err := img.Layers()
	require.NoError(b, err)
	var total int64
	for _, l := range ls {
		n, err := l.Size()
		require.NoError(b, err)
		total += n
	}
	return img, total
}

func BenchmarkPush(b *testing.B) {
	for _, c := range []struct {
		layers int
		size   int64
	}{{16, 256 << 10}, {2, 8 << 20}} {
		b.Run(fmt.Sprintf("%dx%dKiB", c.layers, c.size>>10), func(b *testing.B) {
			host := startHub(b, server.Config{}, nil)
			img, total := benchImage(b, c.layers, c.size)
			b.SetBytes(total)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// a new repository each time: every blob is sent
				_, err := client.Push(context.Background(), img, fmt.Sprintf("%s/bench/r%d:v1", host, i))
				require.NoError(b, err)
			}
		})
	}
}

func BenchmarkRepush(b *testing.B) {
	host := startHub(b, server.Config{}, nil)
	img, _ := benchImage(b, 4, 64<<10)
	_, err := client.Push(context.Background(), img, host+"/bench/same:v1")
	require.NoError(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, err := client.Push(context.Background(), img, host+"/bench/same:v1")
		require.NoError(b, err)
	}
}

func BenchmarkPull(b *testing.B) {
	host := startHub(b, server.Config{}, nil)
	img, total := benchImage(b, 16, 256<<10)
	_, err := client.Push(context.Background(), img, host+"/bench/pull:v1")
	require.NoError(b, err)
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := openStore(b)
		b.StartTimer()
		_, err := client.Pull(context.Background(), st, host+"/bench/pull:v1", false, client.PolicyAlways)
		require.NoError(b, err)
	}
}
