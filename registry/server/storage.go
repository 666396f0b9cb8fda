package server

import (
	"context"
	"fmt"

	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
)

// remoteStorage are the storage drivers built in besides filesystem and inmemory: data
// kept off this machine, which several hubs (replicas) may serve at once (s3driver.go).
var remoteStorage = map[string]bool{"s3": true}

// storageFromConfig settles where a hub keeps its data when cfg names neither a directory
// nor memory: the storage section of cfg.Distribution. A filesystem section becomes
// RootDirectory and inmemory InMemory; for a remote driver it returns the driver's name.
func storageFromConfig(cfg *Config) (remote string, err error) {
	if cfg.RootDirectory != "" || cfg.InMemory || cfg.Distribution == nil {
		return "", nil
	}
	st := cfg.Distribution.Storage
	t, err := storageType(st)
	if err != nil {
		return "", err
	}
	switch {
	case t == "":
		return "", nil
	case t == "filesystem":
		root, _ := st.Parameters()["rootdirectory"].(string)
		if root == "" {
			root = "/var/lib/registry" // distribution's default
		}
		cfg.RootDirectory = root
	case t == "inmemory":
		cfg.InMemory = true
	case remoteStorage[t]:
		return t, nil
	default:
		return "", fmt.Errorf("storage %q is not built into sealos: use filesystem, inmemory or s3", t)
	}
	return "", nil
}

// storageType is st.Type() with its panic (several drivers named) as an error.
func storageType(st configuration.Storage) (t string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("storage: %v", r)
		}
	}()
	return st.Type(), nil
}

// remoteDriver opens the remote driver st names, with its parameters.
func remoteDriver(ctx context.Context, st configuration.Storage) (storagedriver.StorageDriver, error) {
	t := st.Type()
	d, err := factory.Create(ctx, t, st.Parameters())
	if err != nil {
		return nil, fmt.Errorf("storage %s: %w", t, err)
	}
	return d, nil
}

// Storage says where the hub keeps its data, for people: its directory, "memory", or the
// remote driver and its bucket.
func (s *Server) Storage() string {
	switch {
	case s.remote != "":
		p := s.cfg.Distribution.Storage.Parameters()
		where := fmt.Sprintf("%s bucket %v", s.remote, p["bucket"])
		if ep, _ := p["regionendpoint"].(string); ep != "" {
			where += " at " + ep
		}
		return where
	case s.cfg.InMemory:
		return "memory"
	}
	return s.cfg.RootDirectory
}

// SetStorage makes driver, with params over those dc names for it already, dc's storage
// (the other sections, cache and maintenance among them, are kept). Nil params change
// nothing.
func SetStorage(dc *configuration.Configuration, driver string, params map[string]any) {
	if params == nil {
		return
	}
	if dc.Storage == nil {
		dc.Storage = configuration.Storage{}
	}
	merged := configuration.Parameters{}
	for k, v := range dc.Storage {
		switch k {
		case "maintenance", "cache", "delete", "redirect", "tag":
		case driver:
			for pk, pv := range v {
				merged[pk] = pv
			}
			delete(dc.Storage, k)
		default:
			delete(dc.Storage, k)
		}
	}
	for k, v := range params {
		merged[k] = v
	}
	dc.Storage[driver] = merged
}

// SetRedis points dc's Redis at addr and makes it the blob descriptor cache.
func SetRedis(dc *configuration.Configuration, addr string) {
	dc.Redis.Options.Addrs = []string{addr}
	if dc.Storage == nil {
		dc.Storage = configuration.Storage{}
	}
	cache := configuration.Parameters{}
	for k, v := range dc.Storage["cache"] {
		cache[k] = v
	}
	cache["blobdescriptor"] = "redis"
	dc.Storage["cache"] = cache
}
