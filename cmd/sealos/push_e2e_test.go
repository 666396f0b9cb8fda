package main

// End-to-end tests of sealos push, pull, login and logout with the real binary
// ($SEALOS_BIN, set by `make test`) against the hub started by `sealos registry serve`.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/cluster-image/sealos/store"

	"github.com/cluster-image/sealos/internal/testtool"
)

func sealosBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("SEALOS_BIN")
	if bin == "" {
		testtool.Missing(t, "SEALOS_BIN not set: end-to-end tests need the built binary (make test sets it)")
	}
	return bin
}

// serveHub runs `sealos registry serve filesystem` on a free loopback port and returns
// host:port; the process is stopped with SIGTERM at cleanup.
func serveHub(t *testing.T, bin string, extra ...string) string {
	t.Helper()
	return serveRegistryDir(t, bin, t.TempDir(), extra...)
}

type result struct {
	stdout, stderr string
	err            error
}

func sealos(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(sealosBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return result{out.String(), errb.String(), err}
}

func mustSealos(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	r := sealos(t, env, stdin, args...)
	require.NoError(t, r.err, "sealos %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	return r
}

func TestPushPullEndToEnd(t *testing.T) {
	bin := sealosBin(t)
	host := serveHub(t, bin)
	ctx := context.Background()
	root := t.TempDir()
	st, err := store.Open(root)
	require.NoError(t, err)
	img, err := random.Image(64<<10, 3)
	require.NoError(t, err)
	want, err := img.Digest()
	require.NoError(t, err)
	require.NoError(t, st.WriteImage(ctx, "example.com/apps/demo:v1", img))
	env := []string{"DOCKER_CONFIG=" + t.TempDir()}

	// push to another name; progress lines on stderr (not a terminal), JSON on stdout.
	r := mustSealos(t, env, "", "--root", root, "push", "-o", "json", "example.com/apps/demo:v1", host+"/apps/demo:v1")
	var pushed struct{ Digest, Destination string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &pushed))
	assert.Equal(t, want.String(), pushed.Digest)
	assert.Equal(t, 4, strings.Count(r.stderr, ": done "), "one line per blob (3 layers, config): %s", r.stderr)

	// again: nothing to send.
	r = mustSealos(t, env, "", "--root", root, "push", "example.com/apps/demo:v1", host+"/apps/demo:v1")
	assert.Equal(t, host+"/apps/demo@"+want.String()+"\n", r.stdout)
	assert.NotContains(t, r.stderr, ": done ")

	// pull into an empty store, then again (up to date), then by policy.
	root2 := t.TempDir()
	r = mustSealos(t, env, "", "--root", root2, "pull", "-o", "json", host+"/apps/demo:v1")
	var pulled []struct{ Ref, Digest, Status string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &pulled))
	require.Len(t, pulled, 1)
	assert.Equal(t, want.String(), pulled[0].Digest)
	assert.Equal(t, "pulled", pulled[0].Status)
	st2, err := store.Open(root2)
	require.NoError(t, err)
	desc, err := st2.Resolve(ctx, host+"/apps/demo:v1")
	require.NoError(t, err)
	assert.Equal(t, want, desc.Digest)

	r = mustSealos(t, env, "", "--root", root2, "pull", "-q", host+"/apps/demo:v1")
	assert.Contains(t, r.stdout, "up to date")
	r = mustSealos(t, env, "", "--root", root2, "pull", "--policy", "missing", host+"/apps/demo:v1")
	assert.Contains(t, r.stdout, "present")

	r = sealos(t, env, "", "--root", t.TempDir(), "pull", "--policy", "never", host+"/apps/demo:v1")
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "not found in the local store")

	r = sealos(t, env, "", "--root", root2, "pull", "--policy", "sometimes", host+"/apps/demo:v1")
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "unknown pull policy")

	// an image the registry does not have: the error names it, exit status 1.
	r = sealos(t, env, "", "--root", root2, "pull", host+"/apps/missing:v1")
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "apps/missing:v1")
}

// loginHub serves a hub whose one user is admin, password s3cret.
func loginHub(t *testing.T, bin string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, os.WriteFile(htpasswd, []byte("admin:"+string(hash)+"\n"), 0o600))
	return serveHub(t, bin, "--htpasswd", htpasswd)
}

func TestLoginLogoutEndToEnd(t *testing.T) {
	bin := sealosBin(t)
	host := loginHub(t, bin)

	root := t.TempDir()
	st, err := store.Open(root)
	require.NoError(t, err)
	img, err := random.Image(8<<10, 1)
	require.NoError(t, err)
	require.NoError(t, st.WriteImage(context.Background(), host+"/private/app:v1", img))
	cfg := t.TempDir()
	env := []string{"DOCKER_CONFIG=" + cfg}

	r := sealos(t, env, "", "--root", root, "push", "-q", host+"/private/app:v1")
	require.Error(t, r.err, "no credentials yet")

	r = sealos(t, env, "wrong\n", "login", "-u", "admin", "--password-stdin", host)
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "incorrect username or password")

	r = mustSealos(t, env, "s3cret\n", "login", "-u", "admin", "--password-stdin", host)
	assert.Contains(t, r.stdout, "Login Succeeded")
	b, err := os.ReadFile(filepath.Join(cfg, "config.json"))
	require.NoError(t, err)
	assert.Contains(t, string(b), host)

	mustSealos(t, env, "", "--root", root, "push", "-q", host+"/private/app:v1")
	mustSealos(t, env, "", "--root", t.TempDir(), "pull", "-q", host+"/private/app:v1")

	r = mustSealos(t, env, "", "logout", host)
	assert.Contains(t, r.stdout, host)
	r = sealos(t, env, "", "logout", host)
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "not logged in")
}

func TestPullSeveralEndToEnd(t *testing.T) {
	bin := sealosBin(t)
	host := serveHub(t, bin)
	ctx := context.Background()
	root := t.TempDir()
	st, err := store.Open(root)
	require.NoError(t, err)
	var refs []string
	for _, n := range []string{"a", "b", "c", "d"} {
		img, err := random.Image(16<<10, 2)
		require.NoError(t, err)
		ref := host + "/many/" + n + ":v1"
		require.NoError(t, st.WriteImage(ctx, ref, img))
		mustSealos(t, nil, "", "--root", root, "push", "-q", ref)
		refs = append(refs, ref)
	}
	// One missing image among them: the others are pulled, the error names the missing one.
	args := append([]string{"--root", t.TempDir(), "pull", "-o", "json"}, refs[0], refs[1], host+"/many/nope:v1", refs[2], refs[3])
	r := sealos(t, nil, "", args...)
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "many/nope:v1")
	var pulled []struct{ Ref, Status string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &pulled), r.stdout)
	require.Len(t, pulled, 4)
	for i, p := range pulled {
		assert.Equal(t, refs[i], p.Ref, "results in argument order")
		assert.Equal(t, "pulled", p.Status)
	}
}

// push, pull and registry copy take buildah's --creds and --authfile instead of the stored
// logins; push writes --digestfile.
func TestTransferCredsFlags(t *testing.T) {
	bin := sealosBin(t)
	host := loginHub(t, bin)
	root := t.TempDir()
	st, err := store.Open(root)
	require.NoError(t, err)
	img, err := random.Image(8<<10, 1)
	require.NoError(t, err)
	ref := host + "/private/app:v1"
	require.NoError(t, st.WriteImage(context.Background(), ref, img))
	want, err := img.Digest()
	require.NoError(t, err)
	env := []string{"DOCKER_CONFIG=" + t.TempDir()} // no stored login

	r := sealos(t, env, "", "--root", root, "push", "-q", "--retry", "0", ref)
	require.Error(t, r.err, "the hub wants a login")
	assert.Contains(t, sealos(t, env, "", "--root", root, "push", "-q", "--creds", "admin:wrong", "--retry", "0", ref).stderr, "401")
	digestFile := filepath.Join(t.TempDir(), "digest")
	mustSealos(t, env, "", "--root", root, "push", "-q", "--creds", "admin:s3cret", "--digestfile", digestFile, ref)
	got, err := os.ReadFile(digestFile)
	require.NoError(t, err)
	assert.Equal(t, want.String(), string(got))

	auth := filepath.Join(t.TempDir(), "auth.json")
	require.NoError(t, os.WriteFile(auth, []byte(`{"auths":{"`+host+`":{"auth":"`+base64.StdEncoding.EncodeToString([]byte("admin:s3cret"))+`"}}}`), 0o600))
	other := t.TempDir()
	mustSealos(t, env, "", "--root", other, "pull", "-q", "--authfile", auth, ref)
	_, err = store.Open(other)
	require.NoError(t, err)
	assert.Contains(t, mustSealos(t, env, "", "--root", other, "images").stdout, "private/app")
	mustSealos(t, env, "", "registry", "copy", "--authfile", auth, ref, host+"/copy/app:v1")
	assert.Contains(t, sealos(t, env, "", "--root", other, "pull", "-q", "--authfile", "/nonexistent", ref).stderr, "--authfile")
}
