package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cluster-image/sealos/registry/server"
)

func init() { addRegistryCommand(newRegistryServeCmd) }

type registryServeOptions struct {
	port            int
	address         string
	htpasswd        string
	tlsCert         string
	tlsKey          string
	readOnly        bool
	noUI            bool
	configFile      string
	logLevel        string
	accessLog       bool
	shutdownTimeout time.Duration
	mirrors         []string
	mirrorTTL       time.Duration
	mirrorTLSVerify bool

	allowSparseIndex bool

	idleTimeout       time.Duration
	readHeaderTimeout time.Duration
	maxHeaderBytes    int
	minBodyRate       int64
	bodyRateWindow    time.Duration
	maxConnsPerAddr   int
	maxConns          int
	maxUploadSize     string
	minFreeSpace      string
}

func newRegistryServeCmd() *cobra.Command {
	o := &registryServeOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve an OCI registry (the hub) from a directory or from memory",
		Long: `serve runs the hub: an OCI distribution 1.1 registry (distribution v3 plus the referrers
API), until SIGINT or SIGTERM. On a signal it stops accepting connections and lets requests
in flight finish (up to --shutdown-timeout); an upload cut short stays invisible. Killed
instead, it leaves upload data behind: the next hub to start on the directory removes it
(by owner: never the uploads of another hub that is still serving the directory).

With --htpasswd, a client address whose logins fail 10 times within 10 minutes is answered
429 Too Many Requests (with Retry-After) for a while, 1 s at first, doubling up to 5 min;
wrong user names and wrong passwords take the same time to refuse.

A browser pointed at the hub gets a read-only web view (/ui/): the repositories, their tags,
and what an image holds (cluster-image type, labels, ENV, CMD, layers, the container
images it carries and whether the hub has them, signatures and other referrers), and a
chart of where the bytes go. It asks for the same login as the API; --no-ui turns it off.

The limits flags keep one client from starving the others: idle and slow connections
are closed, a full disk is answered 507 and the cut upload's data removed at once.`,
		Example: `  sealos registry serve filesystem /var/lib/registry
  sealos registry serve fs ./registry -p 5001 --htpasswd /etc/registry/htpasswd --access-log
  sealos registry serve inmem --address 127.0.0.1 --port 0
  # an air-gapped site's hub: mirrors docker.io and quay.io, keeps what it fetched
  sealos registry serve filesystem /var/lib/registry --mirror docker.io=https://registry-1.docker.io --mirror quay.io=https://quay.io`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	f := cmd.PersistentFlags()
	f.IntVarP(&o.port, "port", "p", 5000, "port to listen on (0 picks a free one)")
	f.StringVar(&o.address, "address", "", "address to listen on (default: all interfaces)")
	f.StringVar(&o.htpasswd, "htpasswd", "", "htpasswd file (bcrypt) whose users may use the registry; see 'sealos registry passwd'")
	f.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (PEM); serves HTTPS with --tls-key")
	f.StringVar(&o.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	f.BoolVar(&o.readOnly, "read-only", false, "refuse pushes and deletes")
	f.BoolVar(&o.noUI, "no-ui", false, "do not serve the web view at / and /ui/")
	f.StringVar(&o.configFile, "config", "", "distribution configuration file (YAML) for anything else (http.addr, http.tls, http.secret, auth.htpasswd, ...); flags override it, storage comes from the subcommand")
	f.StringVar(&o.logLevel, "log-level", "error", "registry log level: error, warn, info, debug")
	f.BoolVar(&o.accessLog, "access-log", false, "print one line per request to stderr")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long requests in flight may take to finish after a signal")
	f.StringArrayVar(&o.mirrors, "mirror", nil, "mirror REGISTRY=URL (repeatable), e.g. docker.io=https://registry-1.docker.io: pulls with ?ns=REGISTRY or /v2/REGISTRY/... are served from the hub, fetched from URL on a miss and kept (REGISTRY alone: no upstream)")
	f.DurationVar(&o.mirrorTTL, "mirror-ttl", 0, "re-check a mirrored tag upstream at most this often (0: keep cached tags forever)")
	f.BoolVar(&o.mirrorTLSVerify, "mirror-tls-verify", true, "verify the TLS certificates of --mirror upstreams")
	f.BoolVar(&o.allowSparseIndex, "allow-sparse-index", false, "accept sparse manifests: an index whose child manifests (other platforms' images), or an image whose blobs, are not in the repository (default: refused with MANIFEST_BLOB_UNKNOWN, as stock distribution does)")

	f.DurationVar(&o.idleTimeout, "idle-timeout", 90*time.Second, "close a keep-alive connection that waits this long for its next request")
	f.DurationVar(&o.readHeaderTimeout, "read-header-timeout", 30*time.Second, "how long a client may take to send a request's headers")
	f.IntVar(&o.maxHeaderBytes, "max-header-bytes", 64<<10, "largest request line and headers, in bytes")
	f.Int64Var(&o.minBodyRate, "min-body-rate", 1024, "slowest request body, in bytes/s over --body-rate-window: a slower one is cut (0: no floor)")
	f.DurationVar(&o.bodyRateWindow, "body-rate-window", 30*time.Second, "the window --min-body-rate is measured over")
	f.IntVar(&o.maxConnsPerAddr, "max-conns-per-addr", 256, "connections one client address may hold; more are closed at once (0: no limit)")
	f.IntVar(&o.maxConns, "max-conns", 0, "connections in all; a new one over it closes the longest idle one (0: from the open file limit, -1: no limit)")
	f.StringVar(&o.maxUploadSize, "max-upload-size", "0", "largest blob upload, e.g. 64GiB (0: no limit); a larger one gets 413 and its data is removed")
	f.StringVar(&o.minFreeSpace, "min-free-space", "", "free space kept on the storage filesystem, e.g. 2GiB or 5% (default: the smaller of 1GiB and 5%; 0: none); uploads that would go under it get 507")

	cmd.AddCommand(&cobra.Command{
		Use:     "filesystem DIR",
		Aliases: []string{"fs"},
		Short:   "Serve a registry stored in DIR (created if missing)",
		Example: "  sealos registry serve filesystem /var/lib/registry --port 5000",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRegistryServe(cmd, o, server.Config{RootDirectory: args[0]})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "inmem",
		Short:   "Serve a registry kept in memory (lost on exit; for tests)",
		Example: "  sealos registry serve inmem -p 5001",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRegistryServe(cmd, o, server.Config{InMemory: true})
		},
	})
	return cmd
}

func runRegistryServe(cmd *cobra.Command, o *registryServeOptions, cfg server.Config) error {
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	listen := net.JoinHostPort(o.address, strconv.Itoa(o.port))
	if o.configFile != "" {
		dc, err := server.LoadDistributionConfig(o.configFile)
		if err != nil {
			return err
		}
		cfg.Distribution = dc
		// the file's listener and TLS settings apply unless flags say otherwise
		if dc.HTTP.Addr != "" && !cmd.Flags().Changed("port") && !cmd.Flags().Changed("address") {
			listen = dc.HTTP.Addr
		}
		if o.tlsCert == "" && o.tlsKey == "" {
			o.tlsCert, o.tlsKey = dc.HTTP.TLS.Certificate, dc.HTTP.TLS.Key
		}
	}
	for _, m := range o.mirrors {
		mr, err := server.ParseMirror(m)
		if err != nil {
			return fmt.Errorf("--mirror: %w", err)
		}
		cfg.Mirrors = append(cfg.Mirrors, mr)
	}
	cfg.MirrorTTL = o.mirrorTTL
	if !o.mirrorTLSVerify {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it
		cfg.MirrorTransport = t
	}
	cfg.Htpasswd = o.htpasswd
	cfg.ReadOnly = o.readOnly
	cfg.NoUI = o.noUI
	cfg.AllowSparseIndex = o.allowSparseIndex
	cfg.LogLevel = o.logLevel
	if global.debug && !cmd.Flags().Changed("log-level") {
		cfg.LogLevel = "debug"
	}
	if o.accessLog {
		cfg.AccessLog = cmd.ErrOrStderr()
	}
	limits, err := o.limits()
	if err != nil {
		return err
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()

	if o.tlsCert != "" {
		if _, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey); err != nil {
			return fmt.Errorf("TLS certificate %s / key %s: %w", o.tlsCert, o.tlsKey, err)
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another registry running there? pick another --port)", listen, err)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	scheme, where := "http", "memory"
	if o.tlsCert != "" {
		scheme = "https"
	}
	if cfg.RootDirectory != "" {
		where = cfg.RootDirectory
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "registry serving %s on %s://%s\n", where, scheme, ln.Addr())
	err = srv.Serve(ctx, ln, server.ServeOptions{TLSCert: o.tlsCert, TLSKey: o.tlsKey, ShutdownTimeout: o.shutdownTimeout, Limits: limits})
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "registry stopped")
	return nil
}

// limits turns the limit flags into server.Limits (whose zero values are defaults and
// negative ones "off").
func (o *registryServeOptions) limits() (server.Limits, error) {
	off := func(v int64) int64 {
		if v <= 0 {
			return -1
		}
		return v
	}
	l := server.Limits{
		IdleTimeout:       time.Duration(off(int64(o.idleTimeout))),
		ReadHeaderTimeout: time.Duration(off(int64(o.readHeaderTimeout))),
		MaxHeaderBytes:    int(off(int64(o.maxHeaderBytes))),
		MinBodyRate:       off(o.minBodyRate),
		BodyRateWindow:    o.bodyRateWindow,
		MaxConnsPerAddr:   int(off(int64(o.maxConnsPerAddr))),
		MaxConns:          o.maxConns,
	}
	var err error
	if l.MaxUploadSize, err = server.ParseSize(o.maxUploadSize); err != nil {
		return l, fmt.Errorf("--max-upload-size: %w", err)
	}
	if l.MinFreeBytes, l.MinFreePercent, err = server.ParseReserve(o.minFreeSpace); err != nil {
		return l, fmt.Errorf("--min-free-space: %w", err)
	}
	return l, nil
}
