package client_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/cluster-image/sealos/registry/client"
	"github.com/cluster-image/sealos/registry/server"
)

// authHub starts a hub that requires admin:secret.
func authHub(t *testing.T) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	require.NoError(t, err)
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	require.NoError(t, os.WriteFile(htpasswd, []byte("admin:"+string(hash)+"\n"), 0o600))
	return startHub(t, server.Config{Htpasswd: htpasswd}, nil)
}

type dockerConfig struct {
	Auths       map[string]struct{ Auth string } `json:"auths"`
	CredsStore  string                           `json:"credsStore"`
	CredHelpers map[string]string                `json:"credHelpers"`
}

func readDockerConfig(t *testing.T, dir string) dockerConfig {
	t.Helper()
	var c dockerConfig
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &c))
	return c
}

func TestLoginPushLogout(t *testing.T) {
	host := authHub(t)
	ctx := context.Background()
	cfgDir := t.TempDir()
	// The default keychain (push/pull) reads $DOCKER_CONFIG, like docker.
	t.Setenv("DOCKER_CONFIG", cfgDir)
	img, err := random.Image(4<<10, 1)
	require.NoError(t, err)

	_, err = client.Push(ctx, img, host+"/auth/app:v1", client.WithRetry(0, 0))
	require.Error(t, err, "anonymous push must be refused")
	assert.Contains(t, err.Error(), "401")

	_, err = client.Login(ctx, host, "admin", "wrong", cfgDir)
	require.ErrorIs(t, err, client.ErrUnauthorized)
	assert.NoFileExists(t, filepath.Join(cfgDir, "config.json"), "nothing stored for bad credentials")

	key, err := client.Login(ctx, host, "admin", "secret", cfgDir)
	require.NoError(t, err)
	assert.Equal(t, host, key)
	c := readDockerConfig(t, cfgDir)
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("admin:secret")), c.Auths[host].Auth)

	_, err = client.Push(ctx, img, host+"/auth/app:v1")
	require.NoError(t, err)
	_, err = client.Image(ctx, host+"/auth/app:v1")
	require.NoError(t, err)

	_, err = client.Logout(host, cfgDir)
	require.NoError(t, err)
	assert.NotContains(t, readDockerConfig(t, cfgDir).Auths, host)
	_, err = client.Logout(host, cfgDir)
	require.ErrorIs(t, err, client.ErrNotLoggedIn)
	_, err = client.Image(ctx, host+"/auth/app:v1", client.WithRetry(0, 0))
	require.Error(t, err, "credentials are gone")
}

// credentialHelper is a real docker credential helper (the docker-credential-helpers
// protocol: store/get/erase on stdin/stdout) that keeps one credential in a file.
const credentialHelper = `#!/bin/sh
f="$(dirname "$0")/helper-store.json"
case "$1" in
store) cat > "$f" ;;
get) if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
erase) rm -f "$f" ;;
list) echo '{}' ;;
esac
`

func TestLoginThroughCredentialHelper(t *testing.T) {
	host := authHub(t)
	ctx := context.Background()
	binDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(binDir, "docker-credential-sealostest"), []byte(credentialHelper), 0o755))
	t.Setenv("PATH", binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	require.NoError(t, os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"credsStore":"sealostest"}`), 0o600))

	_, err := client.Login(ctx, host, "admin", "secret", cfgDir)
	require.NoError(t, err)
	c := readDockerConfig(t, cfgDir)
	assert.Equal(t, "sealostest", c.CredsStore)
	assert.Empty(t, c.Auths[host].Auth, "the secret is in the helper, not in config.json")
	stored, err := os.ReadFile(filepath.Join(binDir, "helper-store.json"))
	require.NoError(t, err)
	assert.Contains(t, string(stored), `"Secret":"secret"`)

	// Push authenticates through the helper.
	img, err := random.Image(4<<10, 1)
	require.NoError(t, err)
	_, err = client.Push(ctx, img, host+"/helper/app:v1")
	require.NoError(t, err)

	_, err = client.Logout(host, cfgDir)
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(binDir, "helper-store.json"))
}
