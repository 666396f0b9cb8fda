package main

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/internal/gcmode"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	root  string
	debug bool
}

var global globalOptions

// batchGC marks a short transfer command whose live heap stays small: it runs with the
// garbage collector off up to gcmode.BatchLimit (see package gcmode).
var batchGC = map[string]string{gcAnnotation: "batch"}

const gcAnnotation = "sealos.io/gc"

// commands is filled by each command file's init, so every command lives in one file and
// adding one never touches another.
var commands []func() *cobra.Command

func addCommand(f func() *cobra.Command) { commands = append(commands, f) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "sealos",
		Short: "Build, ship and run cluster images",
		Long: `sealos packages a whole cluster (Kubernetes, its apps and every container image they
need) as OCI images, moves them between registries and archives, and runs them on hosts.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			if cmd.Annotations[gcAnnotation] == "batch" {
				gcmode.Batch()
			} else {
				gcmode.Normal()
			}
			level := slog.LevelInfo
			if global.debug {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	root.PersistentFlags().StringVar(&global.root, "root", defaultRoot(), "directory for the image store, build cache and cluster state")
	root.PersistentFlags().BoolVar(&global.debug, "debug", false, "print debug logs")
	for _, f := range commands {
		root.AddCommand(f())
	}
	return root
}

// defaultRoot is /var/lib/sealos for root and $XDG_DATA_HOME/sealos otherwise, so an
// unprivileged user never needs write access outside their home. SEALOS_ROOT overrides both.
func defaultRoot() string {
	if r := os.Getenv("SEALOS_ROOT"); r != "" {
		return r
	}
	if os.Geteuid() == 0 {
		return "/var/lib/sealos"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "sealos")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "sealos")
	}
	return filepath.Join(home, ".local", "share", "sealos")
}
