package main

import (
	"fmt"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/cluster-image/sealos/internal/platform"
	"github.com/cluster-image/sealos/registry/client"
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

// loginFlags are buildah's --creds and --authfile, for commands that reach registries.
type loginFlags struct{ creds, authfile string }

func (l *loginFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&l.creds, "creds", "", "log in to registries with USERNAME[:PASSWORD] (asked for on a terminal when left out) instead of the stored logins")
	fl.StringVar(&l.authfile, "authfile", "", "read registry logins from this auth file (config.json format) instead of the docker config")
}

// credentials are the registry logins the flags choose (the stored ones when neither is given).
func (l *loginFlags) credentials() (client.Credentials, error) {
	var c client.Credentials
	if l.creds != "" {
		var ask func() (string, error)
		if term.IsTerminal(int(os.Stdin.Fd())) {
			ask = func() (string, error) {
				fmt.Fprint(os.Stderr, "Password: ")
				b, err := term.ReadPassword(int(os.Stdin.Fd()))
				fmt.Fprintln(os.Stderr)
				return string(b), err
			}
		}
		var err error
		if c, err = client.ParseCreds(l.creds, ask); err != nil {
			return c, err
		}
	}
	if l.authfile != "" {
		cf, err := client.LoadAuthFile(l.authfile)
		if err != nil {
			return c, err
		}
		c.File = cf
	}
	return c, nil
}

// checkOutput refuses an --output other than text or json.
func checkOutput(output string) error {
	if output != "text" && output != "json" {
		return fmt.Errorf("unknown --output %q: use text or json", output)
	}
	return nil
}
