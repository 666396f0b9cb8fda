// Package transporttest is the one test suite every transport.Transport implementation
// must pass (the SSH and the local transport alike).
package transporttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/apply/transport"
)

// Run tests tr. scratch is a directory on the host the suite may write to.
func Run(t *testing.T, tr transport.Transport, scratch string) {
	ctx := context.Background()

	t.Run("Output", func(t *testing.T) {
		out, err := transport.Output(ctx, tr, "echo hello; echo to-stderr >&2")
		require.NoError(t, err)
		assert.Equal(t, "hello\n", string(out))
	})

	t.Run("StreamsStdoutAndStderr", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		err := tr.Run(ctx, "echo out; echo err >&2", transport.RunOptions{Stdout: &stdout, Stderr: &stderr})
		require.NoError(t, err)
		assert.Equal(t, "out\n", stdout.String())
		assert.Equal(t, "err\n", stderr.String())
	})

	t.Run("ExitError", func(t *testing.T) {
		// One stream only: stdout and stderr travel apart over SSH, so their order is not kept.
		err := tr.Run(ctx, "for i in $(seq 1 30); do echo line$i >&2; done; echo boom >&2; exit 7", transport.RunOptions{})
		var ee *transport.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 7, ee.Code)
		assert.Equal(t, tr.Host(), ee.Host)
		assert.Contains(t, ee.Tail, "boom")
		assert.Contains(t, ee.Tail, "line30")
		assert.NotContains(t, ee.Tail, "line5\n", "the tail keeps the last lines only")
		assert.Contains(t, err.Error(), tr.Host())
		assert.Contains(t, err.Error(), "status 7")
	})

	t.Run("Stdin", func(t *testing.T) {
		data := make([]byte, 8<<20)
		_, _ = rand.Read(data)
		sum := sha256.Sum256(data)
		out, err := runOut(ctx, tr, "sha256sum | cut -d' ' -f1", bytes.NewReader(data))
		require.NoError(t, err)
		assert.Equal(t, hex.EncodeToString(sum[:]), strings.TrimSpace(out))
	})

	t.Run("Env", func(t *testing.T) {
		secret := "s3cret 'quoted' $HOME"
		out, err := runOutEnv(ctx, tr, `printf '%s|%s' "$A_KEY" "$other"`, map[string]string{"A_KEY": secret, "other": "x", "bad-key": "y"})
		require.NoError(t, err)
		assert.Equal(t, secret+"|x", out)
		err = tr.Run(ctx, "exit 3", transport.RunOptions{Env: map[string]string{"PW": secret}})
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "s3cret", "env values never appear in errors")
	})

	t.Run("Timeout", func(t *testing.T) {
		start := time.Now()
		err := tr.Run(ctx, "sleep 30", transport.RunOptions{Timeout: 300 * time.Millisecond})
		require.ErrorIs(t, err, transport.ErrTimeout)
		assert.Less(t, time.Since(start), 20*time.Second, "the command is killed, not waited for")
	})

	t.Run("Cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		go func() { time.Sleep(200 * time.Millisecond); cancel() }()
		err := tr.Run(cctx, "sleep 30", transport.RunOptions{})
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("Copy", func(t *testing.T) {
		p := path.Join(scratch, "copy", "sub", "file.txt")
		require.NoError(t, tr.Copy(ctx, strings.NewReader("content\n"), p, 0o640))
		out, err := transport.Output(ctx, tr, "cat "+p+"; stat -c %a "+p+"; ls -a "+path.Dir(p)+" | wc -l")
		require.NoError(t, err)
		assert.Equal(t, "content\n640\n3\n", string(out), "content, mode, and no temporary file left")
		// Overwrite.
		require.NoError(t, tr.Copy(ctx, strings.NewReader("new"), p, 0o600))
		out, err = transport.Output(ctx, tr, "cat "+p)
		require.NoError(t, err)
		assert.Equal(t, "new", string(out))
	})

	t.Run("CopyFailureLeavesOldFile", func(t *testing.T) {
		p := path.Join(scratch, "copy2", "file")
		require.NoError(t, tr.Copy(ctx, strings.NewReader("old"), p, 0o644))
		err := tr.Copy(ctx, failingReader{}, p, 0o644)
		require.Error(t, err)
		out, err := transport.Output(ctx, tr, "cat "+p+"; ls -a "+path.Dir(p)+" | wc -l")
		require.NoError(t, err)
		assert.Equal(t, "old3\n", string(out))
	})

	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 16)
		outs := make([]string, 16)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = runOut(ctx, tr, fmt.Sprintf("echo %d", i), nil)
			}()
		}
		wg.Wait()
		for i := range errs {
			require.NoError(t, errs[i])
			assert.Equal(t, fmt.Sprintf("%d\n", i), outs[i])
		}
	})
}

func runOut(ctx context.Context, tr transport.Transport, cmd string, stdin *bytes.Reader) (string, error) {
	var out bytes.Buffer
	opts := transport.RunOptions{Stdout: &out}
	if stdin != nil {
		opts.Stdin = stdin
	}
	err := tr.Run(ctx, cmd, opts)
	return out.String(), err
}

func runOutEnv(ctx context.Context, tr transport.Transport, cmd string, env map[string]string) (string, error) {
	var out bytes.Buffer
	err := tr.Run(ctx, cmd, transport.RunOptions{Stdout: &out, Env: env})
	return out.String(), err
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("source broke") }
