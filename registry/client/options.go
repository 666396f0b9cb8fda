// Package client moves images between the local store and any OCI registry: push, pull,
// copy, login and logout. It is built on go-containerregistry (remote, authn, transport):
// images are v1.Image / v1.ImageIndex values wherever they come from, and blobs travel as
// they are stored, so digests never change.
//
// Behaviour shared by every operation is set with functional options (WithKeychain,
// WithTLSVerify, WithJobs, WithProgress, ...), like go-containerregistry's crane.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cluster-image/sealos/store"
)

// DefaultJobs is how many blobs move at once unless WithJobs says otherwise. Small blobs
// are latency bound, so more than the CPU count pays off even on two cores.
const DefaultJobs = 8

// Option configures an operation of this package.
type Option func(*options)

type options struct {
	keychain   authn.Keychain
	auth       authn.Authenticator
	tlsVerify  bool
	jobs       int
	progress   *Progress
	platform   *v1.Platform
	transport  http.RoundTripper
	userAgent  string
	retries    int
	retryDelay time.Duration
	mounts     map[v1.Hash]name.Reference
	mountStore *store.Store
}

func makeOptions(opts ...Option) *options {
	o := &options{
		keychain:   authn.DefaultKeychain,
		tlsVerify:  true,
		jobs:       DefaultJobs,
		userAgent:  "sealos",
		retries:    3,
		retryDelay: time.Second,
	}
	for _, opt := range opts {
		opt(o)
	}
	if o.jobs < 1 {
		o.jobs = 1
	}
	return o
}

// WithKeychain looks credentials up in k (default: authn.DefaultKeychain, which reads the
// docker config.json and runs its credential helpers).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithAuth uses a fixed authenticator for every registry instead of the keychain.
func WithAuth(a authn.Authenticator) Option { return func(o *options) { o.auth = a } }

// WithTLSVerify(false) accepts any TLS certificate and allows plain HTTP to every registry.
// Plain HTTP is always allowed for loopback and localhost registries.
func WithTLSVerify(verify bool) Option { return func(o *options) { o.tlsVerify = verify } }

// WithJobs sets how many blobs (and child manifests) move at once.
func WithJobs(n int) Option { return func(o *options) { o.jobs = n } }

// WithProgress reports every blob's bytes to p.
func WithProgress(p *Progress) Option { return func(o *options) { o.progress = p } }

// WithPlatform selects the image of an index that pull resolves to (default: the host).
func WithPlatform(p v1.Platform) Option { return func(o *options) { o.platform = &p } }

// WithTransport sends requests through t instead of the package's tuned HTTP transport.
func WithTransport(t http.RoundTripper) Option { return func(o *options) { o.transport = t } }

// WithUserAgent sets the User-Agent prefix sent to registries.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// WithRetry sets how many times a transient failure (connection reset, 5xx, 429, timeout)
// is tried again, waiting first, then 3x longer each time. WithRetry(0, 0) never retries.
func WithRetry(attempts int, firstDelay time.Duration) Option {
	return func(o *options) { o.retries, o.retryDelay = attempts, firstDelay }
}

// WithMountFrom names, per blob digest, a repository of the target registry that already
// holds the blob: push then asks the registry to mount it from there instead of sending it.
// A failed mount falls back to an upload.
func WithMountFrom(m map[v1.Hash]name.Reference) Option { return func(o *options) { o.mounts = m } }

// WithMountFromStore finds mount sources (see MountSources) in st, and only when the push
// has blobs to send: a re-push of an unchanged image does not read the store's list.
func WithMountFromStore(st *store.Store) Option { return func(o *options) { o.mountStore = st } }

// HostPlatform is the platform of this machine, the default for pulls.
func HostPlatform() v1.Platform {
	return v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
}

func (o *options) nameOptions() []name.Option {
	if !o.tlsVerify {
		return []name.Option{name.Insecure}
	}
	return nil
}

// ParseReference parses an image reference with the docker defaults (docker.io, latest).
func ParseReference(ref string, opts ...Option) (name.Reference, error) {
	return name.ParseReference(ref, makeOptions(opts...).nameOptions()...)
}

func (o *options) httpTransport() http.RoundTripper {
	if o.transport != nil {
		return o.transport
	}
	t := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Bigger buffers than the 4 KiB default: fewer syscalls per blob.
		WriteBufferSize: 256 << 10,
		ReadBufferSize:  256 << 10,
	}
	if !o.tlsVerify {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it
	}
	return t
}

func (o *options) remoteOptions(ctx context.Context) []remote.Option {
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(o.httpTransport()),
		remote.WithJobs(o.jobs),
		remote.WithUserAgent(o.userAgent),
		remote.WithNondistributable,
	}
	if o.auth != nil {
		ropts = append(ropts, remote.WithAuth(o.auth))
	} else {
		ropts = append(ropts, remote.WithAuthFromKeychain(o.keychain))
	}
	if o.platform != nil {
		ropts = append(ropts, remote.WithPlatform(*o.platform))
	} else {
		ropts = append(ropts, remote.WithPlatform(HostPlatform()))
	}
	if o.retries <= 0 {
		ropts = append(ropts, remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	} else {
		ropts = append(ropts, remote.WithRetryBackoff(remote.Backoff{
			Duration: o.retryDelay, Factor: 3, Jitter: 0.1, Steps: o.retries + 1,
		}))
	}
	return ropts
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
