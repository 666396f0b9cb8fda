package client_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/registry/server"
)

// syncBuffer is a bytes.Buffer safe for the display goroutine and the test.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

func TestProgressTerminalDisplay(t *testing.T) {
	host := startHub(t, server.Config{}, nil)
	ctx := context.Background()
	img, err := random.Image(256<<10, 2)
	require.NoError(t, err)

	out := newSyncBuffer()
	p := client.NewProgress(out, true)
	_, err = client.Push(ctx, img, host+"/tty/app:v1", client.WithProgress(p))
	require.NoError(t, err)
	p.Close()
	s := out.String()
	ls, err := img.Layers()
	require.NoError(t, err)
	for _, l := range ls {
		h, err := l.Digest()
		require.NoError(t, err)
		assert.Contains(t, s, "push "+h.Hex[:12]+": done ", s)
	}

	// Pull through the same display kind: every blob ends as one final line.
	out = newSyncBuffer()
	p = client.NewProgress(out, true)
	_, err = client.Pull(ctx, openStore(t), host+"/tty/app:v1", false, client.PolicyAlways, client.WithProgress(p))
	require.NoError(t, err)
	p.Close()
	assert.Equal(t, 3, strings.Count(out.String(), ": done "), out.String())

	// A nil display is valid and silent.
	var none *client.Progress
	none.Close()
}
