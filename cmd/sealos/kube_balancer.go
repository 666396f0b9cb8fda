package main

import (
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/apply/kube"
)

func init() { addCommand(newKubeBalancerCmd) }

func newKubeBalancerCmd() *cobra.Command {
	var (
		listen   string
		backends []string
	)
	cmd := &cobra.Command{
		Use:   "kube-balancer --backend HOST:PORT...",
		Short: "Proxy a node's local API endpoint to every apiserver that answers",
		Long: `kube-balancer is the local API balancer 'sealos run' starts on every node of a cluster
with several masters (sealos itself runs lvscare for this). It listens on 127.0.0.1:6443,
where the node's /etc/hosts sends apiserver.cluster.local, and passes each TCP connection
to the next apiserver that answers: a master that stops answering is left out at once and
probed every 2 s until it is back. TLS passes through: the apiservers' certificates name
127.0.0.1. It runs until it is stopped (SIGTERM).`,
		Example: `  sealos kube-balancer --backend 10.0.0.2:6443 --backend 10.0.0.3:6443 --backend 10.0.0.4:6443`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("kube-balancer: %w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			slog.Info("kube-balancer", "listen", ln.Addr().String(), "backends", backends)
			b := &kube.Balancer{Backends: backends, Log: slog.Default()}
			return b.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", fmt.Sprintf("127.0.0.1:%d", kube.APIServerPort), "address to listen on")
	cmd.Flags().StringArrayVar(&backends, "backend", nil, "an apiserver HOST:PORT (repeatable)")
	_ = cmd.MarkFlagRequired("backend")
	return cmd
}
