// Package server is the hub: an OCI distribution 1.1 registry built on distribution v3's
// App (handlers.NewApp) with our own additions around it:
//
//   - the referrers API (GET /v2/<name>/referrers/<digest>, artifactType filter) and the
//     OCI-Subject header, backed by an index kept in the storage (referrers.go);
//   - htpasswd authentication with verified credentials cached, and an access log that
//     never carries credentials (auth.go);
//   - durability where distribution's filesystem driver lacks it, and less fsync where
//     it is not needed (driver.go); blobs served from their file with sendfile
//     (blobserve.go);
//   - garbage collection that is safe against running hubs, also in other processes
//     (gc.go, gate.go);
//   - spec fixes around the App: NAME_INVALID/TAG_INVALID for paths its router does not
//     match, single-POST uploads, catalog n above the maximum (routes.go, server.go);
//   - mirror mode for pulls of other registries' images (mirror.go, Config.Mirrors).
//
// A Server is an http.Handler factory; the caller owns the listener (or uses Serve):
//
//	srv, err := server.New(server.Config{RootDirectory: dir})
//	...
//	ts := httptest.NewServer(srv.Handler())
//	defer srv.Close()
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
)

// Config says where the hub keeps its data and how it behaves. The zero value of every
// field but RootDirectory (or InMemory) is a sensible default.
type Config struct {
	// RootDirectory is the filesystem storage root (the directory holding docker/registry/v2).
	// It is created if missing. Required unless InMemory is set.
	RootDirectory string
	// InMemory keeps everything in memory (tests, throwaway hubs). Slow for large blobs.
	InMemory bool
	// Htpasswd is an htpasswd file (bcrypt entries). When set, every /v2/ request needs
	// HTTP basic credentials of a user in the file. The file is re-read when it changes.
	Htpasswd string
	// Realm is the realm of the basic-auth challenge; default "sealos-registry".
	Realm string
	// ReadOnly refuses every write (uploads, manifest PUTs, deletes) with 405 UNSUPPORTED.
	ReadOnly bool
	// DisableDelete refuses deletes of manifests, tags and blobs (enabled by default).
	DisableDelete bool
	// LogLevel of distribution's own log (error, warn, info, debug); default "error".
	// distribution logs through logrus' standard logger, so this is process-wide.
	LogLevel string
	// AccessLog, when set, gets one line per request. Credentials are never logged.
	AccessLog io.Writer
	// Secret signs upload state; it must be the same on every replica behind one name.
	// Default: random per process.
	Secret string
	// Distribution is a distribution configuration (e.g. from LoadDistributionConfig) whose
	// settings are taken as the base; the fields above override it where set. When neither
	// RootDirectory nor InMemory is set, its storage section says where the data lives:
	// filesystem, inmemory, or s3 (storage.go), the last shared by replicas.
	Distribution *configuration.Configuration

	// Mirrors turns on mirror mode (see mirror.go): pulls for these registries, named by
	// containerd's ?ns= or a /v2/<registry>/... path prefix, are served from the hub's
	// mirror namespace "<registry>/<repo>", fetched from the upstream on a miss and kept.
	Mirrors []Mirror
	// MirrorTTL is how long a cached tag is served before it is re-checked upstream;
	// 0 keeps it forever.
	MirrorTTL time.Duration
	// MirrorTransport carries upstream requests (default http.DefaultTransport).
	MirrorTransport http.RoundTripper

	// ReferrersPageSize is how many descriptors one referrers response lists at most
	// (default 1000); the rest follow through the Link header.
	ReferrersPageSize int

	// NoUI turns off the read-only web view served at / and /ui/ (package ui).
	NoUI bool

	// BlobCacheDir, for a hub on remote storage, keeps the blobs it serves on local disk
	// (blobcache.go), at most BlobCacheSize bytes (default 10 GiB).
	BlobCacheDir  string
	BlobCacheSize int64

	// AllowSparseIndex accepts sparse manifests: an index whose child manifests, or an
	// image whose config or layers, are not in the repository (routes.go). Off: such a
	// PUT gets 400 MANIFEST_BLOB_UNKNOWN, as from stock distribution.
	AllowSparseIndex bool
}

// Server is one hub. It is safe for concurrent use.
type Server struct {
	cfg        Config
	distConf   *configuration.Configuration
	driver     storagedriver.StorageDriver // shared by every App generation (and GC)
	app        atomic.Pointer[handlers.App]
	auth       *htpasswdAuth
	gate       *writeGate // nil for in-memory
	hub        *hubLock   // this hub's presence on its directory (owner.go); nil unless gate
	mwName     string
	remote     string                // the storage driver of a hub whose data is elsewhere ("s3"), else ""
	rdb        redis.UniversalClient // the replicas' Redis (remote storage only), or nil
	writerID   string                // this replica's writer key in rdb (replicas.go)
	unannounce func()
	mirror     *mirror      // nil unless Config.Mirrors
	ui         http.Handler // nil with Config.NoUI

	mu     sync.Mutex // guards apps, gen
	apps   []*handlers.App
	gen    string       // last seen GC generation
	inproc sync.RWMutex // in-process GC fence (also used for in-memory hubs)
	// refreshMu serializes building the App of a new GC generation (refreshAfterGC)
	refreshMu sync.Mutex
	closed    bool
	baseCtx   context.Context
	cancel    context.CancelFunc
}

// New builds a hub from cfg. Configuration errors (which distribution reports by panicking)
// come back as errors.
func New(cfg Config) (*Server, error) {
	remote, err := storageFromConfig(&cfg)
	if err != nil {
		return nil, fmt.Errorf("registry server: %w", err)
	}
	if cfg.BlobCacheDir != "" && remote == "" {
		return nil, errors.New("registry server: a blob cache is for a hub on remote storage (s3): a directory or memory serves blobs itself")
	}
	if cfg.RootDirectory == "" && !cfg.InMemory && remote == "" {
		return nil, errors.New("registry server: set RootDirectory (or InMemory, or a storage section in Distribution)")
	}
	if cfg.Realm == "" {
		cfg.Realm = "sealos-registry"
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "error"
	}
	lvl, err := logrus.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("registry server: log level %q: use error, warn, info or debug", cfg.LogLevel)
	}
	configureLogging(lvl)

	s := &Server{cfg: cfg, remote: remote}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	switch {
	case remote != "":
		if s.driver, err = remoteDriver(s.baseCtx, cfg.Distribution.Storage); err != nil {
			s.cancel()
			return nil, fmt.Errorf("registry server: %w", err)
		}
		if cfg.BlobCacheDir != "" {
			size := cfg.BlobCacheSize
			if size == 0 {
				size = 10 << 30
			}
			c, err := newBlobCache(cfg.BlobCacheDir, size)
			if err != nil {
				s.cancel()
				return nil, fmt.Errorf("registry server: %w", err)
			}
			s.driver = &cachingDriver{StorageDriver: s.driver, c: c}
		}
		if s.rdb, err = redisClient(cfg.Distribution); err != nil {
			s.cancel()
			return nil, fmt.Errorf("registry server: %w", err)
		}
		if s.rdb != nil && !cfg.ReadOnly {
			if s.writerID, s.unannounce, err = announceWriter(s.rdb, s.Storage()); err != nil {
				s.cancel()
				return nil, fmt.Errorf("registry server: %w", err)
			}
		}
	case cfg.InMemory:
		s.driver = newMemDriver()
	default:
		abs, err := filepath.Abs(cfg.RootDirectory)
		if err != nil {
			return nil, fmt.Errorf("registry server: %w", err)
		}
		s.cfg.RootDirectory = abs
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("registry server: storage directory: %w", err)
		}
		s.driver = &syncingDriver{StorageDriver: filesystem.New(filesystem.DriverParameters{RootDirectory: abs, MaxThreads: 100}), root: abs}
		if !cfg.ReadOnly { // a read-only hub writes nothing, and may serve a read-only directory
			if err := os.MkdirAll(filepath.Join(abs, stagingDir), 0o755); err != nil {
				return nil, fmt.Errorf("registry server: storage directory: %w", err)
			}
			// what killed hubs left (cut uploads, staged blobs, temporary files): by
			// owner, never a live hub's however old (owner.go)
			if s.hub, err = registerHub(abs); err != nil {
				return nil, fmt.Errorf("registry server: %w", err)
			}
			swept, err := sweepDead(abs, !otherHubsAlive(abs, s.hub), false, false)
			if err != nil {
				s.hub.close()
				return nil, fmt.Errorf("registry server: sweeping what dead hubs left: %w", err)
			}
			if swept != (SweepResult{}) {
				slog.Info("registry: removed what dead hubs left", "uploads", swept.Uploads, "staged", swept.Staged, "temps", swept.Temps, "bytes", swept.Bytes)
			}
			if s.gate, err = openWriteGate(abs); err != nil {
				return nil, fmt.Errorf("registry server: %w", err)
			}
		}
		s.gen = readGeneration(abs)
	}
	if cfg.Htpasswd == "" && cfg.Distribution != nil && cfg.Distribution.Auth.Type() == "htpasswd" {
		// a config file's htpasswd auth goes through our cached checker too
		p := cfg.Distribution.Auth.Parameters()
		cfg.Htpasswd, _ = p["path"].(string)
		if realm, _ := p["realm"].(string); realm != "" {
			cfg.Realm = realm
		}
		s.cfg = cfg
	}
	if cfg.Htpasswd != "" {
		s.auth, err = newHtpasswdAuth(cfg.Htpasswd, cfg.Realm)
		if err != nil {
			return nil, fmt.Errorf("registry server: %w", err)
		}
	}
	s.mwName = registerDriver(s.driver)
	s.distConf, err = s.distributionConfig()
	if err != nil {
		s.Close()
		return nil, err
	}
	app, err := s.newApp()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.app.Store(app)
	if len(cfg.Mirrors) > 0 {
		if s.mirror, err = newMirror(s, cfg.Mirrors, cfg.MirrorTTL, cfg.MirrorTransport); err != nil {
			s.Close()
			return nil, err
		}
	}
	if !cfg.NoUI {
		if s.ui, err = s.newUI(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// distributionConfig builds the distribution configuration: the caller's base (if any)
// with our defaults filled in where it says nothing, and our fields on top.
func (s *Server) distributionConfig() (*configuration.Configuration, error) {
	c := &configuration.Configuration{}
	if s.cfg.Distribution != nil {
		cp := *s.cfg.Distribution
		c = &cp
	}
	// Storage: always our shared driver (the middleware swaps it in); keep the caller's
	// maintenance/cache/delete/redirect/tag sections.
	st := configuration.Storage{}
	for k, v := range c.Storage {
		switch k {
		case "maintenance", "cache", "delete", "redirect", "tag":
			st[k] = v
		}
	}
	// the App's own driver only runs the upload purger; requests use s.driver.
	switch {
	case s.remote != "":
		st[s.remote] = s.cfg.Distribution.Storage.Parameters()
	case s.cfg.InMemory:
		st["inmemory"] = configuration.Parameters{}
	default:
		st["filesystem"] = configuration.Parameters{"rootdirectory": s.cfg.RootDirectory}
	}
	if _, ok := st["cache"]; !ok {
		st["cache"] = configuration.Parameters{"blobdescriptor": "inmemory"}
	}
	if _, ok := st["delete"]; !ok || s.cfg.DisableDelete {
		st["delete"] = configuration.Parameters{"enabled": !s.cfg.DisableDelete}
	}
	if _, ok := st["redirect"]; !ok {
		st["redirect"] = configuration.Parameters{"disable": true}
	}
	maint := configuration.Parameters{}
	for k, v := range st["maintenance"] {
		maint[k] = v
	}
	if s.cfg.ReadOnly {
		maint["readonly"] = map[any]any{"enabled": true}
		maint["uploadpurging"] = map[any]any{"enabled": false}
	}
	st["maintenance"] = maint
	c.Storage = st
	c.Middleware = cloneMiddleware(c.Middleware)
	c.Middleware["storage"] = append([]configuration.Middleware{{Name: sharedMiddleware, Options: configuration.Parameters{"id": s.mwName}}}, c.Middleware["storage"]...)

	if c.Catalog.MaxEntries <= 0 {
		c.Catalog.MaxEntries = 1000
	}
	if c.Tags.MaxTags <= 0 {
		c.Tags.MaxTags = 10000
	}
	if s.cfg.Secret != "" {
		c.HTTP.Secret = s.cfg.Secret
	}
	if c.HTTP.Secret == "" {
		c.HTTP.Secret = randomSecret()
	}
	if len(c.Validation.Manifests.URLs.Allow) == 0 && len(c.Validation.Manifests.URLs.Deny) == 0 {
		// non-distributable layers carry URLs: accept them.
		c.Validation.Manifests.URLs.Allow = []string{".+"}
	}
	if c.Validation.Manifests.Indexes.Platforms == "" {
		// indexes may name platforms the hub does not hold (single-arch mirrors).
		c.Validation.Manifests.Indexes.Platforms = "none"
	}
	// Our own auth fronts the App; distribution's htpasswd would bcrypt every request.
	if s.cfg.Htpasswd != "" {
		c.Auth = nil
	}
	c.Notifications = configuration.Notifications{}
	c.HTTP.Debug.Prometheus.Enabled = false
	return c, nil
}

func cloneMiddleware(m map[string][]configuration.Middleware) map[string][]configuration.Middleware {
	out := map[string][]configuration.Middleware{}
	for k, v := range m {
		out[k] = append([]configuration.Middleware(nil), v...)
	}
	return out
}

// newApp runs handlers.NewApp, turning its configuration panics into errors.
func (s *Server) newApp() (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("registry server: configuration: %v", r)
		}
	}()
	// NewApp rewrites some slices of the configuration (URL patterns): give it a copy.
	c := *s.distConf
	c.Validation.Manifests.URLs.Allow = append([]string(nil), s.distConf.Validation.Manifests.URLs.Allow...)
	c.Validation.Manifests.URLs.Deny = append([]string(nil), s.distConf.Validation.Manifests.URLs.Deny...)
	app = handlers.NewApp(s.baseCtx, &c)
	s.mu.Lock()
	s.apps = append(s.apps, app)
	s.mu.Unlock()
	return app, nil
}

// Handler returns the hub's HTTP handler (all of /v2/).
func (s *Server) Handler() http.Handler {
	return s.guard(http.HandlerFunc(s.serveHTTP), Limits{}) // see limits.go; Serve takes its own
}

// Close releases the hub's resources. In-flight requests should be drained first (e.g. by
// http.Server.Shutdown).
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, a := range s.apps {
		errs = append(errs, a.Shutdown())
	}
	s.apps = nil
	s.cancel()
	if s.mirror != nil {
		s.mirror.wait() // background upstream fetches stop with the context
	}
	if s.gate != nil {
		errs = append(errs, s.gate.close(), s.hub.close())
	}
	if s.unannounce != nil {
		s.unannounce()
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	unregisterDriver(s.mwName)
	return errors.Join(errs...)
}

// RootDirectory is the storage root of a filesystem hub ("" when in memory or remote).
func (s *Server) RootDirectory() string { return s.cfg.RootDirectory }

func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lw := &logWriter{ResponseWriter: w, status: http.StatusOK}
	user := ""
	if s.cfg.AccessLog != nil {
		defer func() { s.logAccess(r, lw, user, start) }()
	}

	if r.URL.Path == healthPath {
		s.serveHealth(lw, r) // no login: load balancers ask
		return
	}
	isUI := s.ui != nil && isUIPath(r.URL.Path)
	if !isUI && !strings.HasPrefix(r.URL.Path, "/v2") {
		http.NotFound(lw, r)
		return
	}
	if s.auth != nil {
		// The web view is behind the same login as the API (the browser asks for it).
		u, ok := s.auth.check(lw, r) // 401, or 429 to an address that failed too often
		if !ok {
			return
		}
		user = u
	}
	if isUI {
		s.ui.ServeHTTP(lw, r)
		return
	}

	if isWrite(r.Method) && s.cfg.ReadOnly {
		writeError(lw, http.StatusMethodNotAllowed, "UNSUPPORTED", "the registry is read-only", nil)
		return
	}
	if isWrite(r.Method) {
		if err := s.enterWrite(r.Context()); err != nil {
			writeError(lw, http.StatusServiceUnavailable, "UNAVAILABLE", "registry is busy: "+err.Error(), nil)
			return
		}
		defer s.leaveWrite()
		s.claimUpload(lw, r)
	}
	s.serveAPI(lw, r, true)
}

// serveAPI answers an authorized /v2/ request; viaMirror lets a mirror hub route it to
// its mirror namespaces (and upstreams), which the web view's own reads skip.
func (s *Server) serveAPI(lw *logWriter, r *http.Request, viaMirror bool) {
	s.refreshAfterGC()
	app := s.app.Load()
	if s.mirror != nil && viaMirror {
		// a mirror pull, rewritten to the repository that answers it (nil: answered)
		if r = s.mirror.route(lw, r); r == nil {
			return
		}
	}

	if m := referrersPath.FindStringSubmatch(r.URL.Path); m != nil {
		s.serveReferrers(lw, r, m[1], m[2])
		return
	}
	if !s.validRoute(lw, r) {
		return
	}
	if m := manifestPath.FindStringSubmatch(r.URL.Path); m != nil {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			// distribution answers 404 to a client that does not name OCI types in Accept;
			// a client that names nothing (curl) gets whatever is stored.
			if a := r.Header.Get("Accept"); a == "" || a == "*/*" {
				r.Header.Set("Accept", allManifestTypes)
			}
			s.answerTagAlias(lw, r, m[1], m[2]) // a tag pushed by sha512 answers sha512 (tags.go)
		}
	}
	if r.URL.Path == "/v2/_catalog" {
		// distribution refuses n above its maximum; the spec lets a registry return fewer
		// (with a Link to the rest), so ask for the maximum instead.
		q := r.URL.Query()
		if n, err := strconv.Atoi(q.Get("n")); err == nil && n > s.distConf.Catalog.MaxEntries {
			q.Set("n", strconv.Itoa(s.distConf.Catalog.MaxEntries))
			r.URL.RawQuery = q.Encode()
		}
	}
	if uploadPath.MatchString(r.URL.Path) && r.Method != http.MethodGet && r.Method != http.MethodDelete {
		// upload bodies are bytes whatever a client calls them; distribution refuses other
		// types with a 500, and would read a form-encoded body as a form.
		if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/octet-stream" {
			r.Header.Set("Content-Type", "application/octet-stream")
		}
	}
	if m := blobPath.FindStringSubmatch(r.URL.Path); m != nil {
		if r.Method == http.MethodDelete {
			if d, err := digest.Parse(m[2]); err == nil {
				s.deleteBlob(app, lw, r, m[1], d)
				return
			}
		}
		if d, ok := alias(m[2]); ok {
			lw.answerAs(d, nil)
		} else if s.serveBlobFast(lw, r, m[1], m[2]) {
			return
		}
	}
	if m := uploadStartPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost && !s.cfg.ReadOnly {
		if d, ok := alias(r.URL.Query().Get("mount")); ok {
			s.mountAlias(app, lw, r, m[1], d)
			return
		}
	}
	if r.URL.RawQuery != "" && (uploadPath.MatchString(r.URL.Path) || uploadStartPath.MatchString(r.URL.Path)) {
		if d, ok := alias(r.URL.Query().Get("digest")); ok {
			lw.answerAs(d, nil) // an upload completed under an alias
		}
	}
	if r.Method == http.MethodPut && !s.cfg.ReadOnly {
		if m := uploadPath.FindStringSubmatch(r.URL.Path); m != nil && s.putUploadFast(lw, r, m[1], m[2]) {
			return
		}
	}
	if uploadStartPath.MatchString(r.URL.Path) && r.Method == http.MethodPost && !s.cfg.ReadOnly &&
		r.URL.Query().Get("digest") != "" && r.URL.Query().Get("mount") == "" {
		if m := uploadStartPath.FindStringSubmatch(r.URL.Path); !s.putBlobFast(lw, r, m[1]) {
			s.singlePostUpload(app, lw, r)
		}
		return
	}
	if m := manifestPath.FindStringSubmatch(r.URL.Path); m != nil && !s.cfg.ReadOnly {
		switch r.Method {
		case http.MethodPut:
			if !s.manifestBlobsStored(lw, r, m[1]) {
				return
			}
			s.putManifest(app, lw, r, m[1], m[2])
			return
		case http.MethodDelete:
			s.deleteManifest(app, lw, r, m[1], m[2])
			return
		}
	}
	app.ServeHTTP(lw, r)
}

// enterWrite fences a write request against garbage collection (in this process and,
// for a filesystem hub, in any other process collecting the same directory).
func (s *Server) enterWrite(ctx context.Context) error {
	s.inproc.RLock()
	if s.gate != nil {
		if err := s.gate.enter(ctx); err != nil {
			s.inproc.RUnlock()
			return err
		}
	}
	return nil
}

func (s *Server) leaveWrite() {
	if s.gate != nil {
		s.gate.leave()
	}
	s.inproc.RUnlock()
}

// claimUpload records this process as the owner of the upload session a write request
// opens or writes to, so that a hub starting after a crash knows whether it may remove
// it (owner.go).
func (s *Server) claimUpload(lw *logWriter, r *http.Request) {
	if s.gate == nil {
		return
	}
	if m := uploadPath.FindStringSubmatch(r.URL.Path); m != nil && m[2] != "" {
		claimSession(s.cfg.RootDirectory, m[1], m[2])
		return
	}
	if r.Method == http.MethodPost && uploadStartPath.MatchString(r.URL.Path) {
		lw.onWrite(func(status int) int {
			if status != http.StatusAccepted {
				return status
			}
			if u, err := url.Parse(lw.Header().Get("Location")); err == nil {
				if m := uploadPath.FindStringSubmatch(u.Path); m != nil {
					claimSession(s.cfg.RootDirectory, m[1], m[2])
				}
			}
			return status
		})
	}
}

// refreshAfterGC starts a fresh App (with an empty blob descriptor cache) when a garbage
// collection ran since the last request, so no deleted blob is reported from the cache.
//
// The generation is recorded only once its App is stored, and requests that see a new
// generation wait for whichever of them builds the App: a request released by a
// collection never goes on with the App of before it. (Recording it first let the
// other released requests take the old App, whose cache still listed the deleted blobs:
// manifests naming them were acknowledged.) The generation is read again under
// refreshMu, so the App stored for a generation was always built after the collection
// that wrote it ended.
func (s *Server) refreshAfterGC() {
	if s.cfg.RootDirectory == "" {
		return
	}
	if !s.staleGeneration(readGeneration(s.cfg.RootDirectory)) {
		return
	}
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	g := readGeneration(s.cfg.RootDirectory)
	if !s.staleGeneration(g) {
		return
	}
	app, err := s.newApp()
	if err != nil {
		slog.Error("registry: a fresh App after garbage collection", "error", err)
		return
	}
	s.mu.Lock()
	s.app.Store(app)
	s.gen = g
	s.mu.Unlock()
}

// staleGeneration reports whether the App in use predates generation g.
func (s *Server) staleGeneration(g string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return g != s.gen && !s.closed
}

// logWriter records status and size for the access log and lets handlers hook the
// moment the header is written.
type logWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	beforeWrite func(status int) int // may replace the status
}

// onWrite adds f to what runs when the header is about to be written, after the hooks
// added before it.
func (w *logWriter) onWrite(f func(status int) int) {
	if prev := w.beforeWrite; prev != nil {
		w.beforeWrite = func(status int) int { return f(prev(status)) }
		return
	}
	w.beforeWrite = f
}

func (w *logWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if w.beforeWrite != nil {
		code = w.beforeWrite(code)
	}
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *logWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) logAccess(r *http.Request, w *logWriter, user string, start time.Time) {
	if user == "" {
		user = "-"
	}
	// The path only: query strings carry upload state, never credentials, but keep lines short.
	fmt.Fprintf(s.cfg.AccessLog, "%s %s %s %s %d %d %s %q\n",
		start.UTC().Format(time.RFC3339), r.RemoteAddr, user, r.Method+" "+r.URL.Path, w.status, w.bytes,
		time.Since(start).Round(time.Microsecond), r.UserAgent())
}
