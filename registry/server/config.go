package server

import (
	"fmt"
	"os"

	"github.com/distribution/distribution/v3/configuration"
)

// LoadDistributionConfig reads a distribution configuration file (YAML, version 0.1),
// for Config.Distribution. REGISTRY_* environment variables override it as in the stock
// registry.
func LoadDistributionConfig(path string) (*configuration.Configuration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("registry config: %w", err)
	}
	defer f.Close()
	c, err := configuration.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("registry config %s: %w", path, err)
	}
	return c, nil
}
