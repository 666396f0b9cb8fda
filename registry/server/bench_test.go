package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/opencontainers/go-digest"
)

// BenchmarkPush pushes blobs the way clients do (POST, PATCH with the whole blob, PUT
// with the digest) over loopback HTTP and reports MB/s, to the hub and to a stock
// distribution App configured like the stock registry binary (filesystem driver,
// inmemory blob descriptor cache), in the same run.
func BenchmarkPush(b *testing.B) {
	for _, bc := range []struct {
		name  string
		size  int
		count int
	}{
		{"64MiB", 64 << 20, 1},
		{"16x1MiB", 1 << 20, 16},
	} {
		for _, target := range []string{"hub", "stock"} {
			b.Run(bc.name+"/"+target, func(b *testing.B) {
				var h http.Handler
				if target == "hub" {
					srv, err := New(Config{RootDirectory: b.TempDir()})
					if err != nil {
						b.Fatal(err)
					}
					defer srv.Close()
					h = srv.Handler()
				} else {
					h = stockApp(b, b.TempDir())
				}
				ts := httptest.NewServer(h)
				defer ts.Close()
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
}

// stockApp is distribution's App as the stock registry binary runs it by default.
func stockApp(b *testing.B, dir string) http.Handler {
	c := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": dir},
			"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
			"delete":     configuration.Parameters{"enabled": true},
		},
	}
	c.HTTP.Secret = "bench"
	app := handlers.NewApp(context.Background(), c)
	b.Cleanup(func() { _ = app.Shutdown() })
	return app
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

// BenchmarkPull fetches blobs (GET) over loopback HTTP from the hub and from a stock
// distribution App, in the same run.
func BenchmarkPull(b *testing.B) {
	for _, bc := range []struct {
		name  string
		size  int
		count int
	}{
		{"64MiB", 64 << 20, 1},
		{"16x1MiB", 1 << 20, 16},
	} {
		for _, target := range []string{"hub", "stock"} {
			b.Run(bc.name+"/"+target, func(b *testing.B) {
				var h http.Handler
				if target == "hub" {
					srv, err := New(Config{RootDirectory: b.TempDir()})
					if err != nil {
						b.Fatal(err)
					}
					defer srv.Close()
					h = srv.Handler()
				} else {
					h = stockApp(b, b.TempDir())
				}
				ts := httptest.NewServer(h)
				defer ts.Close()
				var urls []string
				for j := 0; j < bc.count; j++ {
					blob := randomBytes(bc.size)
					if err := pushRaw(ts.URL, "bench/pull", blob); err != nil {
						b.Fatal(err)
					}
					urls = append(urls, ts.URL+"/v2/bench/pull/blobs/"+digest.FromBytes(blob).String())
				}
				b.SetBytes(int64(bc.size * bc.count))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for _, u := range urls {
						res, err := http.Get(u)
						if err != nil {
							b.Fatal(err)
						}
						n, _ := io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if res.StatusCode != http.StatusOK || n != int64(bc.size) {
							b.Fatalf("GET: %s, %d bytes", res.Status, n)
						}
					}
				}
			})
		}
	}
}

// BenchmarkHeadManifest is the request a re-push of an unchanged image starts with.
func BenchmarkHeadManifest(b *testing.B) {
	for _, target := range []string{"hub", "stock"} {
		b.Run(target, func(b *testing.B) {
			var h http.Handler
			if target == "hub" {
				srv, err := New(Config{RootDirectory: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				defer srv.Close()
				h = srv.Handler()
			} else {
				h = stockApp(b, b.TempDir())
			}
			ts := httptest.NewServer(h)
			defer ts.Close()
			hb := &hub{t: b, url: ts.URL}
			_, mb := hb.image("head", 2)
			req, _ := http.NewRequest("PUT", ts.URL+"/v2/head/manifests/v1", bytes.NewReader(mb))
			req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			res, err := http.DefaultClient.Do(req)
			if err != nil || res.StatusCode != http.StatusCreated {
				b.Fatal(err, res.Status)
			}
			res.Body.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req, _ := http.NewRequest("HEAD", ts.URL+"/v2/head/manifests/v1", nil)
				req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
				res, err := http.DefaultClient.Do(req)
				if err != nil || res.StatusCode != http.StatusOK {
					b.Fatal(err, res.Status)
				}
				res.Body.Close()
			}
		})
	}
}
