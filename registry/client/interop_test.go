package client_test

// Interop with the clients people use, against the hub (registry/server on a loopback
// listener): push with sealos and pull with each tool, push with each tool and pull with
// sealos; the digests must be identical on both sides. The tools (CI installs them):
//   skopeo, buildah: Debian packages
//   go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
//   go install github.com/regclient/regclient/cmd/regctl@v0.11.7

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/registry/server"

	"github.com/cluster-image/sealos/internal/testtool"
)

var toolInstall = map[string]string{
	"skopeo":  "apt-get install skopeo",
	"buildah": "apt-get install buildah",
	"crane":   "go install github.com/google/go-containerregistry/cmd/crane@v0.22.1",
	"regctl":  "go install github.com/regclient/regclient/cmd/regctl@v0.11.7",
	// the OCI distribution-spec conformance suite (its module is named for the directory)
	"conformance": "go install github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111",
}

// tool finds an interop client in PATH or in $(go env GOPATH)/bin, or skips the test.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	testtool.Missing(t, "%s not installed (%s); CI installs it", name, toolInstall[name])
	return ""
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "%s %s\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), stdout.String(), stderr.String())
	return strings.TrimSpace(stdout.String())
}

// interopImages are what every tool must carry unchanged: a docker schema2 image, an OCI
// image and a two-platform OCI index, all with real gzip tar layers.
func interopImages(t *testing.T) map[string]client.Pushable {
	t.Helper()
	docker, err := random.Image(48<<10, 3)
	require.NoError(t, err)
	oci := ociImage(t, 2)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img := ociImage(t, 2)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		img, err = mutate.ConfigFile(img, cf)
		require.NoError(t, err)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return map[string]client.Pushable{"docker": docker, "oci": oci, "index": idx}
}

func ociImage(t *testing.T, layers int) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i := 0; i < layers; i++ {
		l, err := random.Layer(24<<10, types.OCILayer)
		require.NoError(t, err)
		img, err = mutate.AppendLayers(img, l)
		require.NoError(t, err)
	}
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	return img
}

func digestOf(t *testing.T, p client.Pushable) string {
	t.Helper()
	raw, err := p.RawManifest()
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pushAll pushes the interop images with sealos and returns name -> digest.
func pushAll(t *testing.T, host, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, p := range interopImages(t) {
		desc, err := client.Push(context.Background(), p, host+"/"+repo+":"+name)
		require.NoError(t, err)
		out[name] = desc.Digest.String()
		require.Equal(t, digestOf(t, p), out[name])
	}
	return out
}

// pullWithSealos pulls ref into a fresh store (every platform) and checks the digest.
func pullWithSealos(t *testing.T, ref, want string) {
	t.Helper()
	st := openStore(t)
	res, err := client.Pull(context.Background(), st, ref, true, client.PolicyAlways)
	require.NoError(t, err)
	assert.Equal(t, want, res.Digest, ref)
	// Every blob arrived and matches its digest.
	desc, err := st.Resolve(context.Background(), ref)
	require.NoError(t, err)
	assert.Equal(t, want, desc.Digest.String())
	var imgs []v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := st.ImageIndex(context.Background(), ref)
		require.NoError(t, err)
		m, err := idx.IndexManifest()
		require.NoError(t, err)
		for _, d := range m.Manifests {
			img, err := idx.Image(d.Digest)
			require.NoError(t, err)
			imgs = append(imgs, img)
		}
	} else {
		img, err := st.Image(context.Background(), ref)
		require.NoError(t, err)
		imgs = append(imgs, img)
	}
	for _, img := range imgs {
		ls, err := img.Layers()
		require.NoError(t, err)
		for _, l := range ls {
			d, err := l.Digest()
			require.NoError(t, err)
			rc, err := l.Compressed()
			require.NoError(t, err)
			h, _, err := v1.SHA256(rc)
			rc.Close()
			require.NoError(t, err)
			assert.Equal(t, d, h)
		}
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// writeLayout writes the interop images into an OCI layout, one tag each.
func writeLayout(t *testing.T, dir string) map[string]string {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	require.NoError(t, err)
	out := map[string]string{}
	for name, img := range interopImages(t) {
		ann := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": name})
		switch v := img.(type) {
		case v1.ImageIndex:
			require.NoError(t, p.AppendIndex(v, ann))
		case v1.Image:
			require.NoError(t, p.AppendImage(v, ann))
		}
		out[name] = digestOf(t, img)
	}
	return out
}

func TestInteropSkopeo(t *testing.T) {
	skopeo := tool(t, "skopeo")
	host := startHub(t, server.Config{}, nil)
	tmp := t.TempDir()
	env := []string{"HOME=" + tmp}

	t.Run("sealos push, skopeo pull", func(t *testing.T) {
		for name, want := range pushAll(t, host, "to-skopeo") {
			ref := "docker://" + host + "/to-skopeo:" + name
			got := run(t, env, skopeo, "inspect", "--tls-verify=false", "--raw", ref)
			assert.Equal(t, want, "sha256:"+hex.EncodeToString(sha256Bytes([]byte(got))), name)
			// A full pull; skopeo 1.9 keeps docker manifests byte-exact only in dir: and
			// OCI ones (and indexes) only in oci:.
			dir := filepath.Join(tmp, "dir-"+name)
			if name == "docker" {
				run(t, env, skopeo, "copy", "--src-tls-verify=false", "--preserve-digests", ref, "dir:"+dir)
				assert.Equal(t, want, sha256File(t, filepath.Join(dir, "manifest.json")), name)
				continue
			}
			run(t, env, skopeo, "copy", "--src-tls-verify=false", "--all", ref, "oci:"+dir+":"+name)
			b, err := os.ReadFile(filepath.Join(dir, "index.json"))
			require.NoError(t, err)
			if name != "index" {
				assert.Contains(t, string(b), want, name)
				continue
			}
			// skopeo 1.9 re-serializes an OCI index it copies (and cannot copy one with
			// --preserve-digests), so only the images in it keep their digests.
			var m v1.IndexManifest
			raw := run(t, env, skopeo, "inspect", "--tls-verify=false", "--raw", ref)
			require.NoError(t, json.Unmarshal([]byte(raw), &m))
			for _, d := range m.Manifests {
				assert.FileExists(t, filepath.Join(dir, "blobs", "sha256", d.Digest.Hex), "child %s", d.Digest)
			}
		}
	})
	t.Run("skopeo push, sealos pull", func(t *testing.T) {
		// skopeo 1.9 reads only OCI manifests from an oci: layout; the docker image goes
		// from the dir: copy the pull above made.
		lay := filepath.Join(tmp, "layout")
		for name, want := range writeLayout(t, lay) {
			ref := host + "/from-skopeo:" + name
			src := "oci:" + lay + ":" + name
			if name == "docker" {
				src = "dir:" + filepath.Join(tmp, "dir-docker")
				want = sha256File(t, filepath.Join(tmp, "dir-docker", "manifest.json"))
			}
			digestFile := filepath.Join(tmp, "digest-"+name)
			run(t, env, skopeo, "copy", "--dest-tls-verify=false", "--all", "--digestfile", digestFile, src, "docker://"+ref)
			pushed, err := os.ReadFile(digestFile)
			require.NoError(t, err)
			if name != "index" { // skopeo rewrites indexes, see above
				assert.Equal(t, want, string(pushed), name)
			}
			pullWithSealos(t, ref, string(pushed))
		}
	})
}

func sha256Bytes(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func TestInteropCrane(t *testing.T) {
	crane := tool(t, "crane")
	host := startHub(t, server.Config{}, nil)
	tmp := t.TempDir()
	env := []string{"HOME=" + tmp}

	t.Run("sealos push, crane pull", func(t *testing.T) {
		for name, want := range pushAll(t, host, "to-crane") {
			ref := host + "/to-crane:" + name
			assert.Equal(t, want, run(t, env, crane, "digest", "--insecure", ref), name)
			run(t, env, crane, "validate", "--insecure", "--remote", ref)
			dir := filepath.Join(tmp, "pull-"+name)
			run(t, env, crane, "pull", "--insecure", "--format", "oci", ref, dir)
			var idx v1.IndexManifest
			b, err := os.ReadFile(filepath.Join(dir, "index.json"))
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &idx))
			require.Len(t, idx.Manifests, 1)
			assert.Equal(t, want, idx.Manifests[0].Digest.String(), name)
		}
	})
	t.Run("crane push, sealos pull", func(t *testing.T) {
		for name, img := range interopImages(t) {
			// crane push takes a layout holding exactly one image or (--index) index.
			// With --index it pushes the layout's own index.json, so the index is the
			// layout root there.
			dir := filepath.Join(tmp, "push-"+name)
			args := []string{"push", "--insecure"}
			switch v := img.(type) {
			case v1.ImageIndex:
				_, err := layout.Write(dir, v)
				require.NoError(t, err)
				args = append(args, "--index")
			case v1.Image:
				p, err := layout.Write(dir, empty.Index)
				require.NoError(t, err)
				require.NoError(t, p.AppendImage(v))
			}
			ref := host + "/from-crane:" + name
			run(t, env, crane, append(args, dir, ref)...)
			pullWithSealos(t, ref, digestOf(t, img))
		}
	})
}

func TestInteropRegctl(t *testing.T) {
	regctl := tool(t, "regctl")
	host := startHub(t, server.Config{}, nil)
	tmp := t.TempDir()
	env := []string{"HOME=" + tmp}
	hostFlag := "--host=reg=" + host + ",tls=disabled"

	t.Run("sealos push, regctl pull", func(t *testing.T) {
		for name, want := range pushAll(t, host, "to-regctl") {
			ref := host + "/to-regctl:" + name
			assert.Equal(t, want, run(t, env, regctl, hostFlag, "image", "digest", ref), name)
			// A full pull: every blob into an OCI layout, digests checked by regctl.
			run(t, env, regctl, hostFlag, "image", "copy", "--digest-tags=false", ref, "ocidir://"+filepath.Join(tmp, "oci-"+name)+":"+name)
			b, err := os.ReadFile(filepath.Join(tmp, "oci-"+name, "index.json"))
			require.NoError(t, err)
			assert.Contains(t, string(b), want, name)
		}
	})
	t.Run("regctl push, sealos pull", func(t *testing.T) {
		lay := filepath.Join(tmp, "layout")
		for name, want := range writeLayout(t, lay) {
			ref := host + "/from-regctl:" + name
			run(t, env, regctl, hostFlag, "image", "copy", "ocidir://"+lay+":"+name, ref)
			pullWithSealos(t, ref, want)
		}
	})
}

func TestInteropBuildah(t *testing.T) {
	buildah := tool(t, "buildah")
	if os.Geteuid() != 0 {
		testtool.Missing(t, "buildah needs root here (containers storage); CI runs as root")
	}
	host := startHub(t, server.Config{}, nil)
	tmp := t.TempDir()
	storage := []string{"--root", filepath.Join(tmp, "root"), "--runroot", filepath.Join(tmp, "run"), "--storage-driver", "vfs"}
	env := []string{"HOME=" + tmp, "REGISTRY_AUTH_FILE=" + filepath.Join(tmp, "auth.json")}
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "auth.json"), []byte(`{"auths":{}}`), 0o600))
	t.Cleanup(func() {
		// vfs layers can hold read-only dirs; let buildah remove its own storage.
		exec.Command(buildah, append(storage, "rmi", "--all", "--force")...).Run() //nolint:errcheck
	})

	digests := pushAll(t, host, "to-buildah")
	t.Run("sealos push, buildah pull", func(t *testing.T) {
		for _, name := range []string{"docker", "oci"} {
			ref := host + "/to-buildah:" + name
			id := run(t, env, buildah, append(storage, "pull", "--quiet", "--tls-verify=false", "docker://"+ref)...)
			got := run(t, env, buildah, append(storage, "inspect", "--type", "image", "--format", "{{.FromImageDigest}}", id)...)
			assert.Equal(t, digests[name], got, name)
		}
	})
	t.Run("buildah push, sealos pull", func(t *testing.T) {
		src := host + "/to-buildah:oci"
		digestFile := filepath.Join(tmp, "digest")
		ref := host + "/from-buildah:v1"
		run(t, env, buildah, append(storage, "push", "--quiet", "--tls-verify=false", "--digestfile", digestFile, src, "docker://"+ref)...)
		want, err := os.ReadFile(digestFile)
		require.NoError(t, err)
		pullWithSealos(t, ref, strings.TrimSpace(string(want)))
	})
}
