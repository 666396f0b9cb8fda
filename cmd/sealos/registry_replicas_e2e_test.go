package main

// Hubs as replicas: three `sealos registry serve s3` processes on one bucket of a real
// S3-compatible server (versitygw, posix backend) with one real Redis (redis-server) as
// their blob descriptor cache and writer list.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/internal/testtool"
	"github.com/cluster-image/sealos/store"
)

const (
	s3Access = "replica-test"
	s3Secret = "replica-test-secret"
	s3Bucket = "registry"
)

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, what, addr string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s did not start listening on %s", what, addr)
}

// startDaemon runs a server program until the test ends.
func startDaemon(t *testing.T, what, addr string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s said:\n%s", what, out.String())
		}
	})
	waitListening(t, what, addr)
}

// startRedis runs redis-server without persistence; it returns host:port.
func startRedis(t *testing.T) string {
	t.Helper()
	bin := testtool.Require(t, "redis-server")
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	startDaemon(t, "redis-server", addr, bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	return addr
}

// replicaArgs are the serve arguments of a replica on the test bucket.
func replicaArgs(endpoint, redisAddr string, extra ...string) []string {
	return append([]string{"s3", s3Bucket, "--endpoint", endpoint, "--access-key", s3Access, "--secret-key", s3Secret,
		"--secret", "one-secret-for-all-replicas", "--redis", redisAddr}, extra...)
}

// replicaConfig is a distribution configuration file naming the test bucket and Redis.
func replicaConfig(t *testing.T, endpoint, redisAddr string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yml")
	require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf(`version: 0.1
storage:
  s3:
    bucket: %s
    region: us-east-1
    regionendpoint: %s
    accesskey: %s
    secretkey: %s
    forcepathstyle: true
    secure: false
  cache:
    blobdescriptor: redis
redis:
  addrs: [%s]
http:
  secret: one-secret-for-all-replicas
`, s3Bucket, endpoint, s3Access, s3Secret, redisAddr)), 0o600))
	return p
}

func TestHubReplicasOnS3E2E(t *testing.T) {
	bin := sealosBin(t)
	endpoint := testtool.VersityGW(t, s3Bucket, s3Access, s3Secret)
	redisAddr := startRedis(t)
	var r [3]servedHub
	for i := range r {
		r[i] = startServe(t, bin, replicaArgs(endpoint, redisAddr)...)
	}
	ref := func(i int, repo string) string { return r[i].addr + "/" + repo }
	var movedBlob string // a blob no manifest names (the upload test's)
	digestAt := func(i int, repoTag string) string {
		t.Helper()
		req, err := http.NewRequest(http.MethodHead, "http://"+r[i].addr+"/v2/"+strings.Replace(repoTag, ":", "/manifests/", 1), nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "HEAD %s on replica %d", repoTag, i+1)
		return resp.Header.Get("Docker-Content-Digest")
	}

	t.Run("health for the load balancer", func(t *testing.T) {
		for i := range r {
			resp, err := http.Get("http://" + r[i].addr + "/healthz")
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, "replica %d", i+1)
		}
		// a replica whose S3 endpoint does not answer is out of rotation
		lost := startServe(t, bin, "s3", s3Bucket, "--endpoint", "http://"+freeAddr(t), "--access-key", s3Access, "--secret-key", s3Secret)
		defer lost.stop()
		resp, err := http.Get("http://" + lost.addr + "/healthz")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
	})

	t.Run("push to one, pull and list from another at once", func(t *testing.T) {
		app := pushImage(t, ref(0, "team/app:v1"), 3)
		root := t.TempDir()
		var wg sync.WaitGroup
		var other string
		var pullOut cliResult
		var tags []string
		var tagsErr error
		wg.Add(3)
		go func() { defer wg.Done(); other = pushImage(t, ref(1, "team/other:v1"), 2) }()
		go func() { defer wg.Done(); pullOut = sealosCLI(t, root, nil, "pull", ref(2, "team/app:v1")) }()
		go func() {
			defer wg.Done()
			repo, err := name.NewRepository(ref(2, "team/app"))
			if err == nil {
				tags, err = remote.List(repo)
			}
			tagsErr = err
		}()
		wg.Wait()
		require.NoError(t, pullOut.err, pullOut.stderr)
		require.NoError(t, tagsErr)
		assert.Equal(t, []string{"v1"}, tags)
		assert.Contains(t, pullOut.stdout+pullOut.stderr, app)
		assert.Equal(t, other, digestAt(0, "team/other:v1"), "replica 1 sees what replica 2 took")
	})

	t.Run("the same image through all three at once", func(t *testing.T) {
		img, err := random.Image(256<<10, 4)
		require.NoError(t, err)
		want, err := img.Digest()
		require.NoError(t, err)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range r {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dst, err := name.ParseReference(ref(i, "team/same:v1"))
				if err == nil {
					err = remote.Write(dst, img)
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "push through replica %d", i+1)
			assert.Equal(t, want.String(), digestAt(i, "team/same:v1"))
		}
		layers, err := img.Layers()
		require.NoError(t, err)
		for i, l := range layers {
			d, _ := l.Digest()
			got := blobSHA(t, r[i%3].addr, "team/same", d.String())
			assert.Equal(t, d.Hex, got, "layer %d read back whole", i)
		}
	})

	t.Run("an upload moves between replicas", func(t *testing.T) {
		part1, part2 := bytes.Repeat([]byte("a"), 3<<20), bytes.Repeat([]byte("b"), 1<<20)
		sum := sha256.Sum256(append(append([]byte{}, part1...), part2...))
		dg := fmt.Sprintf("sha256:%x", sum)
		resp, err := http.Post("http://"+r[0].addr+"/v2/team/moved/blobs/uploads/", "", nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		at := func(i int, q url.Values) string {
			u := url.URL{Scheme: "http", Host: r[i].addr, Path: loc.Path, RawQuery: loc.RawQuery}
			if q != nil {
				v := u.Query()
				for k, vs := range q {
					v[k] = vs
				}
				u.RawQuery = v.Encode()
			}
			return u.String()
		}
		req, _ := http.NewRequest(http.MethodPatch, at(1, nil), bytes.NewReader(part1))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("0-%d", len(part1)-1))
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "PATCH on replica 2 of an upload replica 1 opened")
		next, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		loc = next
		req, _ = http.NewRequest(http.MethodPut, at(2, url.Values{"digest": {dg}}), bytes.NewReader(part2))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode, "PUT on replica 3: %s", body)
		assert.Equal(t, fmt.Sprintf("%x", sum), blobSHA(t, r[0].addr, "team/moved", dg))
		movedBlob = dg
	})

	t.Run("referrers seen from every replica", func(t *testing.T) {
		subject := pushImage(t, ref(0, "team/signed:v1"), 1)
		// an artifact whose subject is that image, put through replica 2
		empty := []byte("{}")
		emptyDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(empty))
		putBlob(t, r[1].addr, "team/signed", emptyDigest, empty)
		art, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"artifactType": "application/vnd.example.signature",
			"config":       map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": emptyDigest, "size": 2},
			"layers":       []any{map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": emptyDigest, "size": 2}},
			"subject":      map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": manifestSize(t, r[0].addr, "team/signed", subject)},
		})
		artDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(art))
		req, _ := http.NewRequest(http.MethodPut, "http://"+r[1].addr+"/v2/team/signed/manifests/"+artDigest, bytes.NewReader(art))
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode)
		for i := range r {
			resp, err := http.Get("http://" + r[i].addr + "/v2/team/signed/referrers/" + subject)
			require.NoError(t, err)
			var idx v1.IndexManifest
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&idx))
			resp.Body.Close()
			require.Len(t, idx.Manifests, 1, "replica %d", i+1)
			assert.Equal(t, artDigest, idx.Manifests[0].Digest.String(), "replica %d", i+1)
		}
	})

	t.Run("OCI conformance through a balancer over all three", func(t *testing.T) {
		suite := testtool.Require(t, "conformance")
		var next atomic.Int64
		backends := make([]*url.URL, len(r))
		for i := range r {
			backends[i] = &url.URL{Scheme: "http", Host: r[i].addr}
		}
		// every request to the next replica: uploads, manifests and reads cross replicas
		lb := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(backends[next.Add(1)%int64(len(backends))])
			pr.Out.Host = pr.In.Host // Location headers name the balancer
		}})
		defer lb.Close()
		results := t.TempDir()
		cmd := exec.Command(suite)
		cmd.Dir = results
		cmd.Env = append(os.Environ(), "OCI_REGISTRY="+strings.TrimPrefix(lb.URL, "http://"), "OCI_TLS=disabled",
			"OCI_RESULTS_DIR="+results, "OCI_LOG=warn", "OCI_USERNAME=", "OCI_PASSWORD=", "OCI_DATA_SPARSE=false")
		cmd.Env = append(cmd.Env, testtool.ConformanceAll...)
		out, err := cmd.CombinedOutput()
		failed := regexp.MustCompile(`(?m)^.*(failed test|:\s+FAIL\s*$).*$`).FindAllString(string(out), 40)
		require.NoError(t, err, "the conformance suite failed through the balancer:\n%s", strings.Join(failed, "\n"))
		assert.Regexp(t, `(?m)^\s+FAIL\.*:\s+0$`, string(out))
		assert.Regexp(t, `Referrers\.*:\s+Pass`, string(out))
		assert.Greater(t, next.Load(), int64(100), "requests went through the balancer")
	})

	t.Run("a replica killed mid-push loses nothing it acknowledged", func(t *testing.T) {
		root := t.TempDir()
		st, err := store.Open(root)
		require.NoError(t, err)
		img, err := random.Image(16<<20, 8)
		require.NoError(t, err)
		require.NoError(t, st.WriteImage(context.Background(), "big:v1", img))
		layers, err := img.Layers()
		require.NoError(t, err)
		var digests []string
		for _, l := range layers {
			d, _ := l.Digest()
			digests = append(digests, d.String())
		}
		victim := startServe(t, bin, replicaArgs(endpoint, redisAddr)...)
		push := exec.Command(bin, "--root", root, "push", "-j", "1", "--retry", "0", "big:v1", victim.addr+"/team/big:v1")
		var pushOut bytes.Buffer
		push.Stdout, push.Stderr = &pushOut, &pushOut
		require.NoError(t, push.Start())
		// kill the replica once two layers are acknowledged (visible through another)
		var acked []string
		deadline := time.Now().Add(60 * time.Second)
		for len(acked) < 2 && time.Now().Before(deadline) {
			acked = acked[:0]
			for _, d := range digests {
				if blobExists(t, r[2].addr, "team/big", d) {
					acked = append(acked, d)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		require.GreaterOrEqual(t, len(acked), 2, "the push made no progress:\n%s", pushOut.String())
		require.NoError(t, victim.proc.Kill())
		err = push.Wait()
		require.Error(t, err, "the push should have been cut by the kill (it finished first):\n%s", pushOut.String())
		for _, d := range acked {
			assert.Equal(t, strings.TrimPrefix(d, "sha256:"), blobSHA(t, r[1].addr, "team/big", d), "acknowledged blob %s", d)
		}
		// the client goes on through another replica and finishes
		mustCLI(t, root, "push", "big:v1", r[0].addr+"/team/big:v1")
		want, _ := img.Digest()
		assert.Equal(t, want.String(), digestAt(2, "team/big:v1"))
		for _, d := range digests {
			assert.Equal(t, strings.TrimPrefix(d, "sha256:"), blobSHA(t, r[2].addr, "team/big", d))
		}
	})

	t.Run("the mirror cache is shared", func(t *testing.T) {
		upstream, _ := stoppableHub(t, bin, t.TempDir())
		nginx := pushImage(t, upstream+"/library/nginx:1.27", 3)
		// count what the replicas fetch upstream, blob by blob
		var mu sync.Mutex
		fetched := map[string]int{}
		up, _ := url.Parse("http://" + upstream)
		counter := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			if pr.In.Method == http.MethodGet && strings.Contains(pr.In.URL.Path, "/blobs/sha256:") {
				mu.Lock()
				fetched[pr.In.URL.Path[strings.LastIndex(pr.In.URL.Path, "/")+1:]]++
				mu.Unlock()
			}
			pr.SetURL(up)
		}})
		defer counter.Close()
		var m [2]servedHub
		for i := range m {
			m[i] = startServe(t, bin, replicaArgs(endpoint, redisAddr, "--mirror", "docker.io="+counter.URL)...)
			defer m[i].stop()
		}
		for i := range m {
			img, err := remote.Image(mustRef(t, m[i].addr+"/docker.io/library/nginx:1.27"))
			require.NoError(t, err, "pull through mirror replica %d", i+1)
			d, _ := img.Digest()
			assert.Equal(t, nginx, d.String())
			readLayers(t, img)
		}
		mu.Lock()
		defer mu.Unlock()
		require.NotEmpty(t, fetched, "nothing was fetched upstream")
		for blob, n := range fetched {
			assert.Equal(t, 1, n, "blob %s fetched upstream %d times by two replicas on one bucket", blob, n)
		}
	})

	t.Run("a replica's blob cache", func(t *testing.T) {
		cacheDir := t.TempDir()
		c := startServe(t, bin, replicaArgs(endpoint, redisAddr, "--cache-dir", cacheDir, "--cache-size", "64MiB")...)
		defer c.stop()
		pull := func() {
			img, err := remote.Image(mustRef(t, c.addr+"/team/same:v1"))
			require.NoError(t, err)
			readLayers(t, img) // each layer checked against its digest
		}
		pull()
		files, err := filepath.Glob(filepath.Join(cacheDir, "*", "*"))
		require.NoError(t, err)
		assert.Empty(t, files, "a blob read once is not kept")
		pull()
		pull()
		files, err = filepath.Glob(filepath.Join(cacheDir, "*", "*"))
		require.NoError(t, err)
		assert.Len(t, files, 5, "read again: the image's config and 4 layers are kept")
	})

	t.Run("gc refuses while replicas write", func(t *testing.T) {
		cfg := replicaConfig(t, endpoint, redisAddr)
		res := sealosCLI(t, t.TempDir(), nil, "registry", "gc", "--config", cfg, "--keep-recent", "0")
		require.Error(t, res.err)
		assert.Contains(t, res.stderr, "serve this storage writable")
		// a dry run may look at any time
		res = sealosCLI(t, t.TempDir(), nil, "registry", "gc", "--config", cfg, "--dry-run", "-o", "json")
		require.NoError(t, res.err, res.stderr)

		// with every replica read-only (restarted so), it collects, and the replicas
		// answer for what it deleted from storage, not from the cache. The replica killed
		// above could not say goodbye: its key lasts until it expires (15 s).
		// replica 1 keeps the blobs it serves on its disk: one it cached, gc deletes
		cacheDir := t.TempDir()
		for i := range r {
			r[i].stop()
			extra := []string{"--read-only"}
			if i == 0 {
				extra = append(extra, "--cache-dir", cacheDir)
			}
			r[i] = startServe(t, bin, replicaArgs(endpoint, redisAddr, extra...)...)
		}
		require.NotEmpty(t, movedBlob)
		blobSHA(t, r[0].addr, "team/moved", movedBlob)
		blobSHA(t, r[0].addr, "team/moved", movedBlob) // read twice: kept
		cached := filepath.Join(cacheDir, strings.TrimPrefix(movedBlob, "sha256:")[:2], strings.TrimPrefix(movedBlob, "sha256:"))
		require.FileExists(t, cached, "the blob replica 1 served is in its cache")
		deadline := time.Now().Add(30 * time.Second)
		for {
			res = sealosCLI(t, t.TempDir(), nil, "registry", "gc", "--config", cfg, "--keep-recent", "0", "--delete-untagged", "-o", "json")
			if res.err == nil || time.Now().After(deadline) || !strings.Contains(res.stderr, "serve this storage writable") {
				break
			}
			time.Sleep(time.Second)
		}
		require.NoError(t, res.err, res.stderr)
		var out struct {
			DeletedBlobs []string `json:"deletedBlobs"`
		}
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &out), res.stdout)
		require.Contains(t, out.DeletedBlobs, movedBlob, "the moved upload's blob is in no manifest: %s", res.stdout)
		for i := range r {
			assert.False(t, blobExists(t, r[i].addr, "team/moved", movedBlob), "replica %d still answers for a deleted blob", i+1)
			assert.NotEmpty(t, digestAt(i, "team/app:v1"), "what is in use stays")
		}
		resp, err := http.Get("http://" + r[0].addr + "/v2/team/moved/blobs/" + movedBlob)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, "a deleted blob is not served from the cache that still holds it")
		assert.FileExists(t, cached)
	})
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	require.NoError(t, err)
	return r
}

// blobSHA reads blob d of repo from the hub at addr and returns the hex SHA-256 of what came.
func blobSHA(t *testing.T, addr, repo, d string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v2/" + repo + "/blobs/" + d)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET blob %s from %s", d, addr)
	h := sha256.New()
	_, err = io.Copy(h, resp.Body)
	require.NoError(t, err)
	return fmt.Sprintf("%x", h.Sum(nil))
}

func blobExists(t *testing.T, addr, repo, d string) bool {
	t.Helper()
	resp, err := http.Head("http://" + addr + "/v2/" + repo + "/blobs/" + d)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// putBlob uploads data as blob d of repo in one POST and PUT.
func putBlob(t *testing.T, addr, repo, d string, data []byte) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v2/"+repo+"/blobs/uploads/", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	q := loc.Query()
	q.Set("digest", d)
	u := url.URL{Scheme: "http", Host: addr, Path: loc.Path, RawQuery: q.Encode()}
	req, _ := http.NewRequest(http.MethodPut, u.String(), bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
}

// manifestSize is the size of manifest d of repo.
func manifestSize(t *testing.T, addr, repo, d string) int64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, "http://"+addr+"/v2/"+repo+"/manifests/"+d, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp.ContentLength
}
