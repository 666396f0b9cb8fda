package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// dockerHubKey is where docker keeps Docker Hub credentials in config.json.
const dockerHubKey = "https://index.docker.io/v1/"

// ErrUnauthorized is returned by Login when the registry rejects the credentials.
var ErrUnauthorized = errors.New("unauthorized: incorrect username or password")

// ConfigFile loads the docker config.json from dir, or from $DOCKER_CONFIG / ~/.docker
// when dir is empty. The same file go-containerregistry's default keychain reads.
func ConfigFile(dir string) (*configfile.ConfigFile, error) {
	if dir == "" {
		dir = config.Dir()
	}
	cf, err := config.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load docker config in %s: %w", dir, err)
	}
	return cf, nil
}

func credentialKey(reg name.Registry) string {
	if reg.RegistryStr() == name.DefaultRegistry {
		return dockerHubKey
	}
	return reg.RegistryStr()
}

// Login checks username and password against registry (a host[:port]) and, when they
// are accepted, stores them like `docker login`: through the configured credential
// helper (credsStore / credHelpers) or base64 in config.json. configDir "" means
// $DOCKER_CONFIG or ~/.docker. It returns the key the credentials were stored under.
func Login(ctx context.Context, registry, username, password, configDir string, opts ...Option) (string, error) {
	o := makeOptions(opts...)
	reg, err := name.NewRegistry(registry, o.nameOptions()...)
	if err != nil {
		return "", fmt.Errorf("login %q: %w", registry, err)
	}
	if err := checkLogin(ctx, reg, username, password, o); err != nil {
		return "", err
	}
	cf, err := ConfigFile(configDir)
	if err != nil {
		return "", err
	}
	key := credentialKey(reg)
	ac := types.AuthConfig{ServerAddress: key, Username: username, Password: password}
	if err := cf.GetCredentialsStore(key).Store(ac); err != nil {
		return "", fmt.Errorf("login %s: store credentials in %s: %w", reg, cf.Filename, err)
	}
	if err := cf.Save(); err != nil {
		return "", fmt.Errorf("login %s: save %s: %w", reg, cf.Filename, err)
	}
	return key, nil
}

// checkLogin talks to /v2/ with the credentials: a bearer registry issues a token only for
// valid ones, a basic-auth registry answers 200 only for valid ones.
func checkLogin(ctx context.Context, reg name.Registry, username, password string, o *options) error {
	auth := authn.FromConfig(authn.AuthConfig{Username: username, Password: password})
	tr, err := transport.NewWithContext(ctx, reg, auth, o.httpTransport(), []string{reg.Scope(transport.PullScope)})
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("login %s: %w", reg, ErrUnauthorized)
		}
		return fmt.Errorf("login %s: %w", reg, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("login %s: %w", reg, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("login %s: %w", reg, ErrUnauthorized)
	default:
		return fmt.Errorf("login %s: unexpected status %s from /v2/", reg, resp.Status)
	}
}

// ErrNotLoggedIn is returned by Logout when no credentials are stored for the registry.
var ErrNotLoggedIn = errors.New("not logged in")

// Logout removes the stored credentials for registry from the docker config (and its
// credential helper).
func Logout(registry, configDir string) (string, error) {
	reg, err := name.NewRegistry(registry)
	if err != nil {
		return "", fmt.Errorf("logout %q: %w", registry, err)
	}
	cf, err := ConfigFile(configDir)
	if err != nil {
		return "", err
	}
	key := credentialKey(reg)
	keys := []string{key}
	if key == dockerHubKey {
		keys = append(keys, "docker.io", "index.docker.io")
	}
	var found []string
	for _, k := range keys {
		_, inFile := cf.AuthConfigs[k]
		inHelper := false
		if cf.CredentialsStore != "" || cf.CredentialHelpers[k] != "" {
			if ac, err := cf.GetCredentialsStore(k).Get(k); err == nil && (ac.Username != "" || ac.IdentityToken != "") {
				inHelper = true
			}
		}
		if inFile || inHelper {
			found = append(found, k)
		}
	}
	if len(found) == 0 {
		return key, fmt.Errorf("logout %s: %w", reg, ErrNotLoggedIn)
	}
	for _, k := range found {
		if err := cf.GetCredentialsStore(k).Erase(k); err != nil {
			return key, fmt.Errorf("logout %s: %w", reg, err)
		}
		delete(cf.AuthConfigs, k)
	}
	if err := cf.Save(); err != nil {
		return key, fmt.Errorf("logout %s: save %s: %w", reg, cf.Filename, err)
	}
	return key, nil
}
