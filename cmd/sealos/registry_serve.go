package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/configuration"
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
	secret          string
	redis           string
	cacheDir        string
	cacheSize       string

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
		Short: "Serve an OCI registry (the hub) from a directory, from memory or from an S3 bucket",
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
are closed, a full disk is answered 507 and the cut upload's data removed at once.

Several hubs may serve one S3 bucket as replicas behind a load balancer ('serve s3', or
--config with distribution's storage.s3 section): give them one --secret and one --redis.
What works only on a directory: blobs served with sendfile, the one-pass upload path,
--min-free-space, and gc while hubs write (a bucket is collected while every replica is
read-only; see 'sealos registry gc'). docs/hub-at-scale.md says how to run replicas.`,
		Example: `  sealos registry serve filesystem /var/lib/registry
  sealos registry serve fs ./registry -p 5001 --htpasswd /etc/registry/htpasswd --access-log
  sealos registry serve inmem --address 127.0.0.1 --port 0
  # a replica of a hub on a bucket (the same on every replica host)
  sealos registry serve s3 registry --endpoint http://10.0.0.5:7070 --secret "$SECRET" --redis 10.0.0.6:6379
  sealos registry serve --config /etc/registry/config.yml   # distribution's own file, storage and all
  # an air-gapped site's hub: mirrors docker.io and quay.io, keeps what it fetched
  sealos registry serve filesystem /var/lib/registry --mirror docker.io=https://registry-1.docker.io --mirror quay.io=https://quay.io`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.configFile == "" {
				return cmd.Help()
			}
			// storage from the file: filesystem, inmemory or s3
			return runRegistryServe(cmd, o, server.Config{}, nil)
		},
	}
	f := cmd.PersistentFlags()
	f.IntVarP(&o.port, "port", "p", 5000, "port to listen on (0 picks a free one)")
	f.StringVar(&o.address, "address", "", "address to listen on (default: all interfaces)")
	f.StringVar(&o.htpasswd, "htpasswd", "", "htpasswd file (bcrypt) whose users may use the registry; see 'sealos registry passwd'")
	f.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (PEM); serves HTTPS with --tls-key")
	f.StringVar(&o.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	f.BoolVar(&o.readOnly, "read-only", false, "refuse pushes and deletes")
	f.BoolVar(&o.noUI, "no-ui", false, "do not serve the web view at / and /ui/")
	f.StringVar(&o.configFile, "config", "", "distribution configuration file (YAML: storage, redis, http.addr, http.tls, http.secret, auth.htpasswd, ...); flags override it, and so does the storage a subcommand names")
	f.StringVar(&o.secret, "secret", "", "key that signs upload state (http.secret): the same on every replica behind one name (default: $REGISTRY_HTTP_SECRET, else random per process)")
	f.StringVar(&o.cacheDir, "cache-dir", "", "on a bucket: keep the blobs this replica serves in this local directory, so a blob many nodes pull is fetched from the bucket once")
	f.StringVar(&o.cacheSize, "cache-size", "10GiB", "the most --cache-dir holds; the least recently served blobs go first")
	f.StringVar(&o.redis, "redis", "", "Redis HOST:PORT for the blob descriptor cache (redis.addrs and storage.cache.blobdescriptor: redis): what replicas share")
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
			return runRegistryServe(cmd, o, server.Config{RootDirectory: args[0]}, nil)
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "inmem",
		Short:   "Serve a registry kept in memory (lost on exit; for tests)",
		Example: "  sealos registry serve inmem -p 5001",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRegistryServe(cmd, o, server.Config{InMemory: true}, nil)
		},
	})
	cmd.AddCommand(newRegistryServeS3Cmd(o))
	return cmd
}

// s3Options are the common storage.s3 parameters (as distribution names them), as flags.
type s3Options struct {
	region, endpoint, accessKey, secretKey, rootDir string
	pathStyle, insecure, skipVerify                 bool
}

func newRegistryServeS3Cmd(o *registryServeOptions) *cobra.Command {
	s3 := &s3Options{}
	cmd := &cobra.Command{
		Use:   "s3 BUCKET",
		Short: "Serve a registry stored in an S3 bucket, which several hubs (replicas) may share",
		Long: `s3 serves the registry kept in BUCKET through the S3 API (the hub's own driver, which
takes distribution's storage.s3 parameters). Replicas: run the same command on several
hosts with the same --secret (upload sessions move between them) and --redis (one blob
descriptor cache), and put a load balancer in front; see docs/hub-at-scale.md.
Credentials come from --access-key/--secret-key, else from the AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY environment variables, ~/.aws/credentials or the host's role. A
--config file's storage.s3 section may say the rest (e.g. sessiontoken, rootdirectory).`,
		Example: `  sealos registry serve s3 registry --endpoint http://10.0.0.5:7070 --region us-east-1 \
    --secret "$SECRET" --redis 10.0.0.6:6379 --port 5000
  sealos registry serve --config /etc/registry/config.yml   # storage: s3: ... in the file`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRegistryServe(cmd, o, server.Config{}, s3.parameters(args[0]))
		},
	}
	f := cmd.Flags()
	f.StringVar(&s3.region, "region", "us-east-1", "the bucket's region")
	f.StringVar(&s3.endpoint, "endpoint", "", "URL of an S3-compatible service (regionendpoint), e.g. http://minio:9000")
	f.StringVar(&s3.accessKey, "access-key", "", "access key ID (default: $AWS_ACCESS_KEY_ID or the host's role)")
	f.StringVar(&s3.secretKey, "secret-key", "", "secret access key (default: $AWS_SECRET_ACCESS_KEY)")
	f.StringVar(&s3.rootDir, "prefix", "", "key prefix in the bucket (rootdirectory), for several registries in one bucket")
	f.BoolVar(&s3.pathStyle, "path-style", true, "address the bucket in the path (forcepathstyle), as S3-compatible services want")
	f.BoolVar(&s3.skipVerify, "skip-verify", false, "do not verify the endpoint's TLS certificate")
	return cmd
}

// parameters are the storage.s3 parameters the flags set (those not set are left to the
// --config file's).
func (s *s3Options) parameters(bucket string) map[string]any {
	p := map[string]any{"bucket": bucket, "region": s.region, "forcepathstyle": s.pathStyle}
	set := func(k, v string) {
		if v != "" {
			p[k] = v
		}
	}
	set("regionendpoint", s.endpoint)
	set("accesskey", s.accessKey)
	set("secretkey", s.secretKey)
	set("rootdirectory", s.rootDir)
	if s.skipVerify {
		p["skipverify"] = true
	}
	if strings.HasPrefix(s.endpoint, "http://") {
		p["secure"] = false
	}
	return p
}

// runRegistryServe serves cfg's storage; remote, when set, is the storage.<driver>
// parameters of a remote driver a subcommand named (s3), over the --config file's.
func runRegistryServe(cmd *cobra.Command, o *registryServeOptions, cfg server.Config, remote map[string]any) error {
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	listen := net.JoinHostPort(o.address, strconv.Itoa(o.port))
	var dc *configuration.Configuration
	if o.configFile != "" {
		var err error
		if dc, err = server.LoadDistributionConfig(o.configFile); err != nil {
			return err
		}
	}
	if remote != nil || o.redis != "" {
		if dc == nil {
			dc = &configuration.Configuration{Storage: configuration.Storage{}}
		}
		server.SetStorage(dc, "s3", remote)
		if o.redis != "" {
			server.SetRedis(dc, o.redis)
		}
	}
	cfg.Secret = o.secret
	if o.cacheDir != "" {
		size, err := server.ParseSize(o.cacheSize)
		if err != nil {
			return fmt.Errorf("--cache-size: %w", err)
		}
		cfg.BlobCacheDir, cfg.BlobCacheSize = o.cacheDir, size
	}
	if cfg.Secret == "" && dc == nil {
		cfg.Secret = os.Getenv("REGISTRY_HTTP_SECRET") // distribution's name; a --config file reads it itself
	}
	if dc != nil {
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
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "registry serving %s on %s://%s\n", srv.Storage(), scheme, ln.Addr())
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
