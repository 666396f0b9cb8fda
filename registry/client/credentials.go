package client

import (
	"fmt"
	"os"
	"strings"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Credentials choose the login sent to a registry, as buildah's --creds and --authfile do:
// fixed ones for every registry, or those of a given auth file (docker's config.json
// format, which podman's auth.json shares), or else the docker config (see ConfigFile).
type Credentials struct {
	// Username and Password, when Username is set, go to every registry.
	Username, Password string
	// File is the auth file to read instead of the docker config; nil means the default.
	File *configfile.ConfigFile
}

// ParseCreds reads a --creds value, USERNAME[:PASSWORD]. Without a password, ask is called
// for it (nil: the password is required).
func ParseCreds(s string, ask func() (string, error)) (Credentials, error) {
	user, pass, ok := strings.Cut(s, ":")
	if user == "" {
		return Credentials{}, fmt.Errorf("--creds %q: want USERNAME[:PASSWORD]", s)
	}
	if !ok {
		if ask == nil {
			return Credentials{}, fmt.Errorf("--creds %s: give USERNAME:PASSWORD (no terminal to ask for the password)", user)
		}
		p, err := ask()
		if err != nil {
			return Credentials{}, err
		}
		pass = p
	}
	return Credentials{Username: user, Password: pass}, nil
}

// LoadAuthFile reads an auth file (config.json / auth.json format).
func LoadAuthFile(path string) (*configfile.ConfigFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--authfile: %w", err)
	}
	defer f.Close()
	cf := configfile.New(path)
	if err := cf.LoadFromReader(f); err != nil {
		return nil, fmt.Errorf("--authfile %s: %w", path, err)
	}
	return cf, nil
}

// Lookup returns the login for a registry host ("docker.io" for Docker Hub), in the form
// BuildKit's session asks for; empty when there is none.
func (c Credentials) Lookup(host string) (types.AuthConfig, error) {
	if c.Username != "" {
		return types.AuthConfig{Username: c.Username, Password: c.Password, ServerAddress: host}, nil
	}
	cf := c.File
	if cf == nil {
		var err error
		if cf, err = ConfigFile(""); err != nil {
			return types.AuthConfig{}, err
		}
	}
	key := host
	if host == name.DefaultRegistry || host == "registry-1.docker.io" {
		key = dockerHubKey
	}
	return cf.GetAuthConfig(key)
}

// Keychain is c for go-containerregistry: the default keychain when c sets nothing.
func (c Credentials) Keychain() authn.Keychain {
	if c.Username == "" && c.File == nil {
		return authn.DefaultKeychain
	}
	return credKeychain{c}
}

type credKeychain struct{ c Credentials }

func (k credKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	ac, err := k.c.Lookup(r.RegistryStr())
	if err != nil {
		return nil, err
	}
	if ac.Username == "" && ac.Password == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username: ac.Username, Password: ac.Password,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
	}), nil
}
