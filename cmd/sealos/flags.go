package main

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cluster-image/sealos/internal/platform"
	"github.com/cluster-image/sealos/store"
)

// Checks of flag values that several commands share.

// atLeastOne refuses a count of workers under 1 (which would do nothing, or wait forever).
func atLeastOne(flag string, n int) error {
	if n < 1 {
		return fmt.Errorf("%s %d: give at least 1", flag, n)
	}
	return nil
}

// platformOption is the store option a --platform value selects (none for "").
func platformOption(arg string) ([]store.Option, error) {
	if arg == "" {
		return nil, nil
	}
	p, err := platform.Parse(arg)
	if err != nil {
		return nil, fmt.Errorf("--%w", err)
	}
	return []store.Option{store.WithPlatform(p)}, nil
}

// parsePlatforms reads --platform values (os/arch[/variant], empty ones skipped).
func parsePlatforms(specs []string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, s := range specs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := platform.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("--%w", err)
		}
		out = append(out, p)
	}
	return out, nil
}
