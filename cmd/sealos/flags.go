package main

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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

// refusal is a flag of the same command in sealos (buildah, docker) that we cannot honour:
// it is accepted by the parser, hidden from --help, and refused when given, with a hint,
// so a script that passes it stops with a line saying what to do instead of failing on
// "unknown flag" or having it silently ignored.
type refusal struct {
	name, shorthand string
	// takesValue is false for a boolean flag.
	takesValue bool
	hint       string
}

// addRefusals registers rs on cmd; checkRefusals fails if one of them was given.
func addRefusals(cmd *cobra.Command, rs []refusal) {
	for _, r := range rs {
		if r.takesValue {
			cmd.Flags().StringArrayP(r.name, r.shorthand, nil, r.hint)
		} else {
			cmd.Flags().BoolP(r.name, r.shorthand, false, r.hint)
		}
		_ = cmd.Flags().MarkHidden(r.name)
		cmd.Flags().Lookup(r.name).Annotations = map[string][]string{refusedAnnotation: {r.hint}}
	}
}

const refusedAnnotation = "sealos.refused"

func checkRefusals(cmd *cobra.Command) error {
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if hint := f.Annotations[refusedAnnotation]; err == nil && len(hint) > 0 {
			err = fmt.Errorf("--%s is not supported by sealos %s: %s", f.Name, cmd.Name(), hint[0])
		}
	})
	return err
}
