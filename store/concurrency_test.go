package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/moby/buildkit/client/ociindex"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Worker processes: the test binary re-executed with these variables set.
const (
	envWorkerDir = "SEALOS_STORE_TEST_WORKER_DIR"
	envWorkerID  = "SEALOS_STORE_TEST_WORKER_ID"
	envWorkerN   = "SEALOS_STORE_TEST_WORKER_N"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envStuckWriter); dir != "" {
		stuckWriter(dir) // never returns: the test kills it
	}
	if dir := os.Getenv(envWorkerDir); dir != "" {
		n, _ := strconv.Atoi(os.Getenv(envWorkerN))
		if err := storeWorker(context.Background(), dir, os.Getenv(envWorkerID), n); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// storeWorker writes, tags and removes n images named after id. What it leaves is
// expectedNames(id, n).
func storeWorker(ctx context.Context, dir, id string, n int) error {
	s, err := OpenDir(dir)
	if err != nil {
		return err
	}
	for j := range n {
		img, err := random.Image(200, 1)
		if err != nil {
			return err
		}
		v1ref := fmt.Sprintf("localhost/w%s-%d:v1", id, j)
		tref := fmt.Sprintf("localhost/w%s-%d:t", id, j)
		if err := s.WriteImage(ctx, v1ref, img); err != nil {
			return err
		}
		if err := s.Tag(ctx, v1ref, tref); err != nil {
			return err
		}
		if _, err := s.List(ctx); err != nil {
			return err
		}
		switch j % 3 {
		case 0: // untag one name
			if err := s.Remove(ctx, v1ref); err != nil {
				return err
			}
		case 1: // remove the image by digest, both names
			d, err := img.Digest()
			if err != nil {
				return err
			}
			if _, err := s.RemoveImages(ctx, RemoveOptions{Force: true}, d.String()); err != nil {
				return err
			}
		}
	}
	return nil
}

func expectedNames(id string, n int) []string {
	var out []string
	for j := range n {
		switch j % 3 {
		case 0:
			out = append(out, fmt.Sprintf("localhost/w%s-%d:t", id, j))
		case 2:
			out = append(out, fmt.Sprintf("localhost/w%s-%d:v1", id, j), fmt.Sprintf("localhost/w%s-%d:t", id, j))
		}
	}
	return out
}

// buildkitWriter names n images through BuildKit's own client/ociindex, as BuildKit's
// OCI exporter does when it writes into the store directory, retrying when BuildKit's
// non-blocking lock finds the index busy (BuildKit then fails the export).
func buildkitWriter(ctx context.Context, s *Store, n int) ([]string, error) {
	var out []string
	for j := range n {
		release, err := s.Lease(ctx)
		if err != nil {
			return nil, err
		}
		img, err := random.Image(100, 1)
		if err != nil {
			release()
			return nil, err
		}
		desc, err := s.writeImageBlobs(ctx, img)
		if err != nil {
			release()
			return nil, err
		}
		ref := fmt.Sprintf("localhost/bk-%d:v1", j)
		od := ocispecs.Descriptor{MediaType: string(desc.MediaType), Digest: toDigest(desc.Digest.String()), Size: desc.Size}
		for try := 0; try < 60000; try++ { // bounded: at most about a minute
			err = ociindex.NewStoreIndex(s.Dir()).Put(od, ociindex.Name(ref))
			if err == nil || !strings.Contains(err.Error(), "could not lock") {
				break
			}
			time.Sleep(time.Millisecond)
		}
		release()
		if err != nil {
			return nil, err
		}
		out = append(out, ref)
	}
	return out, nil
}

func TestConcurrentWritersGoroutinesProcessesAndBuildKit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const perWorker = 12
	var want []string
	var wg sync.WaitGroup
	errs := make(chan error, 16)

	// Processes.
	var cmds []*exec.Cmd
	for p := range 3 {
		id := "p" + strconv.Itoa(p)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envWorkerDir+"="+s.Dir(), envWorkerID+"="+id, envWorkerN+"="+strconv.Itoa(perWorker))
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		cmds = append(cmds, cmd)
		want = append(want, expectedNames(id, perWorker)...)
	}
	// Goroutines, each with its own Store value, as separate callers would have.
	for g := range 3 {
		id := "g" + strconv.Itoa(g)
		want = append(want, expectedNames(id, perWorker)...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- storeWorker(ctx, s.Dir(), id, perWorker)
		}()
	}
	// BuildKit's index writer.
	var bkNames []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		bkNames, err = buildkitWriter(ctx, s, perWorker)
		errs <- err
	}()
	wg.Wait()
	for _, c := range cmds {
		assert.NoError(t, c.Wait())
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	want = append(want, bkNames...)

	// index.json is valid JSON and names exactly what the writers left.
	idx := readIndexJSON(t, s)
	var got []string
	for _, d := range idx.Manifests {
		got = append(got, entryName(d))
	}
	assert.ElementsMatch(t, want, got)
	// Every image is whole, and nothing else is left after a final GC.
	for _, n := range want {
		img, err := s.Image(ctx, n)
		require.NoError(t, err, n)
		require.NoError(t, validateImage(img), n)
	}
	_, err := s.GC(ctx)
	require.NoError(t, err)
	for _, n := range want {
		img, err := s.Image(ctx, n)
		require.NoError(t, err, n)
		require.NoError(t, validateImage(img), n)
	}
	// BuildKit's reader agrees.
	bkIdx, err := ociindex.NewStoreIndex(s.Dir()).Read()
	require.NoError(t, err)
	assert.Len(t, bkIdx.Manifests, len(want))
	d, err := ociindex.NewStoreIndex(s.Dir()).Get("docker.io/library/app:none")
	require.NoError(t, err)
	assert.Nil(t, d)
	assert.False(t, errors.Is(err, ErrNotFound))
}
