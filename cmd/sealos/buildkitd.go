package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/builder/buildkit"
)

func init() { addCommand(newBuildkitdCmd) }

func newBuildkitdCmd() *cobra.Command {
	var (
		addr  string
		state string
	)
	cmd := &cobra.Command{
		Use:    "buildkitd --addr unix:///PATH",
		Short:  "Serve the embedded BuildKit engine on a socket (for remote builds and tests)",
		Hidden: true,
		Long: `buildkitd serves the BuildKit controller that sealos embeds on --addr until it is
interrupted, so other sealos processes (or buildctl) can build on it with --buildkit-addr.
Its state and cache live in --state (default <root>/buildkit).`,
		Example: `  sealos buildkitd --addr unix:///run/sealos-buildkitd.sock &
  sealos build --buildkit-addr unix:///run/sealos-buildkitd.sock -t app:v1 .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, ok := strings.CutPrefix(addr, "unix://")
			if !ok || path == "" {
				return fmt.Errorf("--addr %q: want unix:///PATH", addr)
			}
			if state == "" {
				state = filepath.Join(global.root, "buildkit")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d, err := buildkit.StartDaemon(ctx, buildkit.DaemonOptions{Root: state, Debug: global.debug},
				func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), msg) })
			if err != nil {
				return err
			}
			defer d.Close()
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				return err
			}
			l, err := net.Listen("unix", path)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			defer os.Remove(path)
			fmt.Fprintf(cmd.ErrOrStderr(), "buildkitd: serving %s (state %s, snapshotter %s, runc %v)\n", addr, state, d.Snapshotter(), d.HasRunc())
			return d.Serve(ctx, l)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "listen address, unix:///PATH (required)")
	cmd.Flags().StringVar(&state, "state", "", "state directory (default <root>/buildkit)")
	_ = cmd.MarkFlagRequired("addr")
	return cmd
}
