package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"
)

// BenchmarkPush pushes blobs the way clients do (POST, PATCH with the whole blob, PUT
// with the digest) to a filesystem hub over loopback HTTP and reports MB/s.
func BenchmarkPush(b *testing.B) {
	for _, bc := range []struct {
		name  string
		size  int
		count int
	}{
		{"64MiB", 64 << 20, 1},
		{"16x1MiB", 1 << 20, 16},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv, err := New(Config{RootDirectory: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			ts := httptest.NewServer(srv.Handler())
			defer func() { ts.Close(); srv.Close() }()
			blobs := make([][]byte, bc.count)
			b.SetBytes(int64(bc.size * bc.count))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := range blobs {
					blobs[j] = randomBytes(bc.size)
				}
				b.StartTimer()
				for j, blob := range blobs {
					if err := pushRaw(ts.URL, fmt.Sprintf("bench/r%d", j%4), blob); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func pushRaw(base, repo string, blob []byte) error {
	res, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST: %s", res.Status)
	}
	req, _ := http.NewRequest("PATCH", loc, bytes.NewReader(blob))
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("PATCH: %s", res.Status)
	}
	req, _ = http.NewRequest("PUT", withQuery(res.Header.Get("Location"), "digest="+digest.FromBytes(blob).String()), nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT: %s", res.Status)
	}
	return nil
}
