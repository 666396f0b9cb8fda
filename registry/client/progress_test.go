package client_test

import (
	"bytes"
	"context"
	"net/http"
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

// A push that fails reports the blobs it did not move as failed, never as present at
// the target.
func TestProgressFailedPush(t *testing.T) {
	host := startHub(t, server.Config{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"errors":[{"code":"DENIED","message":"no uploads here"}]}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	img, err := random.Image(64<<10, 4)
	require.NoError(t, err)
	var out bytes.Buffer
	p := client.NewProgress(&out, false)
	_, err = client.Push(context.Background(), img, host+"/denied/app:v1", client.WithProgress(p), client.WithJobs(1))
	require.Error(t, err)
	p.CloseWith(err)
	s := out.String()
	assert.NotContains(t, s, "exists", s)
	assert.Contains(t, s, ": failed", s)
	assert.Regexp(t, `; [1-9][0-9]* failed\n$`, s)
}
