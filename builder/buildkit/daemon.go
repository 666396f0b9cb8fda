// Package buildkit runs builds on BuildKit: on a controller embedded in this process (the
// default, so a fresh machine needs no daemon) or on a remote buildkitd named by an address.
// Both are reached through the same *client.Client, so everything above this package sees one
// engine.
package buildkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/diff/apply"
	ctdmetadata "github.com/containerd/containerd/v2/core/metadata"
	ctdsnapshot "github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/containerd/v2/plugins/diff/walking"
	"github.com/containerd/containerd/v2/plugins/snapshots/native"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	"github.com/containerd/platforms"
	"github.com/gofrs/flock"
	"github.com/moby/buildkit/cache/metadata"
	"github.com/moby/buildkit/client"
	bkconfig "github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/control"
	"github.com/moby/buildkit/executor"
	"github.com/moby/buildkit/executor/oci"
	"github.com/moby/buildkit/executor/resources"
	resourcestypes "github.com/moby/buildkit/executor/resources/types"
	"github.com/moby/buildkit/executor/runcexecutor"
	"github.com/moby/buildkit/frontend"
	"github.com/moby/buildkit/session"
	containerdsnapshot "github.com/moby/buildkit/snapshot/containerd"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/solver/bboltcachestorage"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/db/boltutil"
	"github.com/moby/buildkit/util/disk"
	"github.com/moby/buildkit/util/grpcerrors"
	_ "github.com/moby/buildkit/util/grpcutil/encoding/proto" // BuildKit's gRPC codec
	"github.com/moby/buildkit/util/leaseutil"
	"github.com/moby/buildkit/util/network"
	"github.com/moby/buildkit/util/resolver"
	resolverconfig "github.com/moby/buildkit/util/resolver/config"
	"github.com/moby/buildkit/util/winlayers"
	"github.com/moby/buildkit/version"
	"github.com/moby/buildkit/worker"
	"github.com/moby/buildkit/worker/base"
	wlabel "github.com/moby/buildkit/worker/label"
	"github.com/moby/buildkit/worker/runc"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
)

// ErrRuncMissing is returned by a RUN step when the machine has no runc. Every other
// instruction works without it.
var ErrRuncMissing = errors.New("RUN needs the OCI runtime runc, which is not in PATH: install it (Debian/Ubuntu: apt-get install runc)")

// DaemonOptions configure an embedded controller.
type DaemonOptions struct {
	// Root holds all state: snapshots, content, the solver cache and build history. The same
	// Root on the next run makes an unchanged build all cache hits. Required.
	Root string
	// Snapshotter is "auto" (overlayfs when the filesystem supports it, else native),
	// "overlayfs" or "native".
	Snapshotter string
	// InsecureRegistries are hosts (host:port) reached over plain HTTP. Loopback hosts
	// always are.
	InsecureRegistries []string
	// Frontends are gateway frontends served by name (e.g. for a remote client's
	// Frontend field). Builds from this project run their frontend in the client instead.
	Frontends map[string]frontend.Frontend
	// Debug turns on BuildKit's debug logs; otherwise only its errors are logged.
	Debug bool
}

// Daemon is a BuildKit controller running inside this process, serving gRPC on a unix
// socket. Close it to release the state directory for the next process.
type Daemon struct {
	root       string
	addr       string
	socket     string
	ownsSocket bool
	ctrl       *control.Controller
	server     *grpc.Server
	lock       *flock.Flock
	cancel     context.CancelFunc
	serveErr   chan error
	runc       bool
	closeOnce  sync.Once
	closeErr   error
	snapName   string
	// closers release what newController opened when it fails before the controller
	// (which closes them itself) exists.
	closers []func() error
	// after are closed after the controller: what the worker does not close itself.
	after    []func() error
	worker   *base.Worker
	gcPolicy []client.PruneInfo
	pruneMu  sync.Mutex
}

// opened lists the state directories opened by this process. BuildKit keeps process-wide
// caches keyed by the records of a state directory, so one cannot be opened twice.
var opened sync.Map

var logOnce sync.Once

// StartDaemon starts an embedded controller on opt.Root. Only one process can own a state
// directory at a time: a second one waits for the first to finish (or ctx to end), telling
// so through wait (may be nil).
func StartDaemon(ctx context.Context, opt DaemonOptions, wait func(msg string)) (*Daemon, error) {
	if opt.Root == "" {
		return nil, errors.New("buildkit: state directory is required")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the embedded BuildKit needs root (it mounts snapshots): run as root, or point --buildkit-addr / BUILDKIT_HOST at a buildkitd")
	}
	logOnce.Do(func() {
		if opt.Debug {
			logrus.SetLevel(logrus.DebugLevel)
		} else {
			// BuildKit warns about optional kernel features (fsverity, tracing) on every
			// start; build errors reach the user through the client.
			logrus.SetLevel(logrus.ErrorLevel)
		}
		logrus.SetOutput(os.Stderr)
	})
	root, err := filepath.Abs(opt.Root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("buildkit: create state directory: %w", err)
	}
	if _, dup := opened.LoadOrStore(root, true); dup {
		return nil, fmt.Errorf("buildkit: %s was already opened by this process; reuse its Daemon", root)
	}
	lock := flock.New(filepath.Join(root, "buildkitd.lock"))
	if err := lockWaiting(ctx, lock, root, wait); err != nil {
		opened.Delete(root)
		return nil, err
	}
	d := &Daemon{root: root, lock: lock, serveErr: make(chan error, 1)}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()

	sctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	if err := d.newController(sctx, opt); err != nil {
		return nil, err
	}
	d.server = grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcerrors.UnaryServerInterceptor),
		grpc.StreamInterceptor(grpcerrors.StreamServerInterceptor),
		grpc.MaxRecvMsgSize(16<<20),
		grpc.MaxSendMsgSize(16<<20),
	)
	d.ctrl.Register(d.server)

	d.socket = filepath.Join(root, "buildkitd.sock")
	if len(d.socket) > 100 { // sun_path is 108 bytes
		f, err := os.CreateTemp("", "sealos-buildkitd-*.sock")
		if err != nil {
			return nil, err
		}
		f.Close()
		d.socket = f.Name()
	}
	d.ownsSocket = true
	l, err := listenUnix(d.socket)
	if err != nil {
		return nil, err
	}
	d.addr = "unix://" + d.socket
	go func() { d.serveErr <- d.server.Serve(l) }()
	ok = true
	return d, nil
}

func lockWaiting(ctx context.Context, lock *flock.Flock, root string, wait func(string)) error {
	locked, err := lock.TryLock()
	if err != nil {
		return fmt.Errorf("buildkit: lock %s: %w", lock.Path(), err)
	}
	if locked {
		return nil
	}
	if wait != nil {
		wait(fmt.Sprintf("waiting for another sealos process using %s", root))
	}
	locked, err = lock.TryLockContext(ctx, 200*time.Millisecond)
	if err != nil {
		return fmt.Errorf("buildkit: lock %s: %w", lock.Path(), err)
	}
	if !locked {
		return fmt.Errorf("buildkit: %s is in use by another process", root)
	}
	return nil
}

func listenUnix(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("buildkit: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// newController wires the pieces as BuildKit's own buildkitd does (cmd/buildkitd/main.go
// newController and main_oci_worker.go ociWorkerInitializer): session manager, runc worker
// on a snapshotter, worker controller, bolt solver cache and history, controller.
func (d *Daemon) newController(ctx context.Context, opt DaemonOptions) error {
	sm, err := session.NewManager()
	if err != nil {
		return err
	}
	snap, err := snapshotter(d.root, opt.Snapshotter)
	if err != nil {
		return err
	}
	d.snapName = snap.Name

	_, lookErr := exec.LookPath("runc")
	_, lookErr2 := exec.LookPath("buildkit-runc")
	d.runc = lookErr == nil || lookErr2 == nil
	hosts := resolver.NewRegistryConfig(registryConfig(opt.InsecureRegistries))
	wopt, err := d.newWorkerOpt(snap)
	if err != nil {
		return fmt.Errorf("buildkit: worker: %w", err)
	}
	// No GC policy on the worker: the controller would run it on a timer, also while this
	// process is closing the databases under it. Close prunes with d.gcPolicy instead.
	dstat, _ := disk.GetDiskStat(d.root)
	for _, p := range bkconfig.DefaultGCPolicy(bkconfig.GCConfig{}, dstat) {
		d.gcPolicy = append(d.gcPolicy, client.PruneInfo{
			Filter:        p.Filters,
			All:           p.All,
			KeepDuration:  p.KeepDuration.Duration,
			ReservedSpace: p.ReservedSpace.AsBytes(dstat),
			MaxUsedSpace:  p.MaxUsedSpace.AsBytes(dstat),
			MinFreeSpace:  p.MinFreeSpace.AsBytes(dstat),
		})
	}
	wopt.BuildkitVersion = client.BuildkitVersion{Package: version.Package, Version: version.Version, Revision: version.Revision}
	wopt.RegistryHosts = hosts
	w, err := base.NewWorker(ctx, wopt)
	if err != nil {
		return fmt.Errorf("buildkit: worker: %w", err)
	}
	wc := &worker.Controller{}
	if err := wc.Add(w); err != nil {
		return err
	}
	// From here on the worker owns the metadata store, network providers and monitor.
	d.closers = append(slices.Clone(d.after), wc.Close)
	d.worker = w

	cacheStorage, err := bboltcachestorage.NewStore(filepath.Join(d.root, "cache.db"))
	if err != nil {
		return fmt.Errorf("buildkit: cache db: %w", err)
	}
	d.closers = append(d.closers, cacheStorage.Close)
	historyDB, err := boltutil.SafeOpen(filepath.Join(d.root, "history.db"), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("buildkit: history db: %w", err)
	}
	d.closers = append(d.closers, historyDB.Close)
	frontends := map[string]frontend.Frontend{}
	for k, v := range opt.Frontends {
		frontends[k] = v
	}
	ctrl, err := control.NewController(control.Opt{
		SessionManager:   sm,
		WorkerController: wc,
		Frontends:        frontends,
		CacheManager:     solver.NewCacheManager(ctx, "local", cacheStorage, worker.NewCacheResultStorage(wc)),
		HistoryDB:        historyDB,
		CacheStore:       cacheStorage,
		LeaseManager:     w.LeaseManager(),
		ContentStore:     w.ContentStore(),
		GarbageCollect:   w.GarbageCollect,
		GracefulStop:     ctx.Done(),
	})
	if err != nil {
		return fmt.Errorf("buildkit: controller: %w", err)
	}
	d.ctrl = ctrl
	return nil
}

func registryConfig(insecure []string) map[string]resolverconfig.RegistryConfig {
	m := map[string]resolverconfig.RegistryConfig{}
	t := true
	for _, h := range insecure {
		m[h] = resolverconfig.RegistryConfig{PlainHTTP: &t, Insecure: &t}
	}
	return m
}

// newWorkerOpt is BuildKit's runc.NewWorkerOpt for a rootful worker with host networking,
// except that it keeps the metadata database so Close can release it (a later daemon in the
// same process can then open the same state), and that without runc it still builds
// everything but RUN: runcexecutor.New refuses to start without the binary.
func (d *Daemon) newWorkerOpt(snFactory runc.SnapshotterFactory) (base.WorkerOpt, error) {
	var opt base.WorkerOpt
	root := filepath.Join(d.root, "runc-"+snFactory.Name)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return opt, err
	}
	// Host networking, as buildkitd without CNI. netproviders.Providers would also make a
	// proxy provider, whose CA key generation costs up to a second of CPU at every start.
	host := network.NewHostProvider()
	np := map[pb.NetMode]network.Provider{pb.NetMode_UNSET: host, pb.NetMode_HOST: host, pb.NetMode_NONE: network.NewNoneProvider()}
	const npMode = "host"
	rm, err := resources.NewMonitor()
	if err != nil {
		return opt, err
	}
	var exe executor.Executor = noRuncExecutor{}
	if d.runc {
		exe, err = runcexecutor.New(runcexecutor.Opt{
			Root:            filepath.Join(root, "executor"),
			ProcessMode:     oci.ProcessSandbox,
			ResourceMonitor: rm,
		}, np)
		if err != nil {
			return opt, err
		}
	}
	s, err := snFactory.New(filepath.Join(root, "snapshots"))
	if err != nil {
		return opt, err
	}
	d.closers = append(d.closers, s.Close)
	localstore, err := local.NewStore(filepath.Join(root, "content"))
	if err != nil {
		return opt, err
	}
	db, err := bolt.Open(filepath.Join(root, "containerdmeta.db"), 0o644, &bolt.Options{FreelistType: bolt.FreelistMapType, Timeout: time.Minute})
	if err != nil {
		return opt, err
	}
	d.closers = append(d.closers, db.Close)
	d.after = append(d.after, db.Close, s.Close)
	mdb := ctdmetadata.NewDB(db, localstore, map[string]ctdsnapshot.Snapshotter{snFactory.Name: s})
	if err := mdb.Init(context.TODO()); err != nil {
		return opt, err
	}
	c := containerdsnapshot.NewContentStore(mdb.ContentStore(), "buildkit")
	id, err := base.ID(root)
	if err != nil {
		return opt, err
	}
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "unknown"
	}
	md, err := metadata.NewStore(filepath.Join(root, "metadata_v2.db"))
	if err != nil {
		return opt, err
	}
	d.closers = append(d.closers, md.Close)
	return base.WorkerOpt{
		ID:   id,
		Root: root,
		Labels: map[string]string{
			wlabel.Executor:       "oci",
			wlabel.Snapshotter:    snFactory.Name,
			wlabel.Hostname:       hostname,
			wlabel.Network:        npMode,
			wlabel.OCIProcessMode: oci.ProcessSandbox.String(),
			wlabel.SELinuxEnabled: "false",
		},
		MetadataStore:    md,
		NetworkProviders: np,
		Executor:         exe,
		Snapshotter:      containerdsnapshot.NewSnapshotter(snFactory.Name, mdb.Snapshotter(snFactory.Name), "buildkit", nil),
		ContentStore:     c,
		Applier:          winlayers.NewFileSystemApplierWithWindows(c, apply.NewFileSystemApplier(c)),
		Differ:           winlayers.NewWalkingDiffWithWindows(c, walking.NewWalkingDiff(c)),
		Platforms:        []ocispecs.Platform{platforms.Normalize(platforms.DefaultSpec())},
		LeaseManager:     leaseutil.WithNamespace(ctdmetadata.NewLeaseManager(mdb), "buildkit"),
		GarbageCollect:   mdb.GarbageCollect,
		MountPoolRoot:    filepath.Join(root, "cachemounts"),
		ResourceMonitor:  rm,
	}, nil
}

// snapshotter picks overlayfs when the state directory's filesystem supports it, native
// otherwise (as buildkitd's "auto", minus fuse-overlayfs).
func snapshotter(root, name string) (runc.SnapshotterFactory, error) {
	if name == "" || name == "auto" {
		// The choice is made once per state directory: the check mounts a test overlay,
		// which costs a noticeable part of an unchanged rebuild.
		for _, n := range []string{"overlayfs", "native"} {
			if fi, err := os.Stat(filepath.Join(root, "runc-"+n)); err == nil && fi.IsDir() {
				return snapshotter(root, n)
			}
		}
		name = "native"
		if err := overlayutils.Supported(root); err == nil {
			name = "overlayfs"
		} else {
			bklog.L.Debugf("overlayfs not supported on %s, using native snapshotter: %v", root, err)
		}
	}
	switch name {
	case "native":
		return runc.SnapshotterFactory{Name: name, New: native.NewSnapshotter}, nil
	case "overlayfs":
		return runc.SnapshotterFactory{Name: name, New: func(root string) (ctdsnapshot.Snapshotter, error) {
			return overlay.NewSnapshotter(root, overlay.AsynchronousRemove)
		}}, nil
	}
	return runc.SnapshotterFactory{}, fmt.Errorf("unknown snapshotter %q: use auto, overlayfs or native", name)
}

// Addr is the daemon's gRPC address (unix://...).
func (d *Daemon) Addr() string { return d.addr }

// Snapshotter is the snapshotter in use ("overlayfs" or "native").
func (d *Daemon) Snapshotter() string { return d.snapName }

// ContentDir is the root of the engine's content store (blobs/sha256/...).
func (d *Daemon) ContentDir() string {
	return filepath.Join(d.root, "runc-"+d.snapName, "content")
}

// HasRunc tells whether RUN steps can run.
func (d *Daemon) HasRunc() bool { return d.runc }

// Client connects to the daemon.
func (d *Daemon) Client(ctx context.Context) (*client.Client, error) {
	return client.New(ctx, d.addr)
}

// Serve also serves the controller on l until ctx ends or the daemon is closed.
func (d *Daemon) Serve(ctx context.Context, l net.Listener) error {
	srv := d.server
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if d.worker != nil && len(d.gcPolicy) > 0 {
				d.prune()
			}
			continue
		case <-ctx.Done():
			l.Close()
			return nil
		case err := <-errc:
			if errors.Is(err, grpc.ErrServerStopped) {
				return nil
			}
			return err
		}
	}
}

// Close stops the controller and releases the state directory.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		if d.server != nil {
			stopped := make(chan struct{})
			go func() { d.server.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(5 * time.Second):
				d.server.Stop()
			}
		}
		if d.worker != nil && d.pruneDue() {
			d.prune()
		}
		if d.cancel != nil {
			d.cancel()
		}
		var errs []error
		if d.ctrl != nil {
			errs = append(errs, d.ctrl.Close()) // closes the workers and databases too
			for _, c := range d.after {
				errs = append(errs, c())
			}
		} else {
			for i := len(d.closers) - 1; i >= 0; i-- {
				errs = append(errs, d.closers[i]())
			}
		}
		if d.ownsSocket && d.socket != "" {
			os.Remove(d.socket)
		}
		if d.lock != nil {
			errs = append(errs, d.lock.Unlock())
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

// pruneEvery is how often the cache is garbage collected. Collecting needs the disk usage
// of every cache record, a walk of every snapshot, so it is not done on every build.
const pruneEvery = time.Hour

// pruneDue tells whether the last collection is older than pruneEvery.
func (d *Daemon) pruneDue() bool {
	if len(d.gcPolicy) == 0 {
		return false
	}
	fi, err := os.Stat(filepath.Join(d.root, "gc.stamp"))
	return err != nil || time.Since(fi.ModTime()) > pruneEvery
}

// prune applies the GC policy (the default of buildkitd: bounded by age and disk space).
func (d *Daemon) prune() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ch := make(chan client.UsageInfo)
	go func() {
		for range ch {
		}
	}()
	d.pruneMu.Lock()
	defer d.pruneMu.Unlock()
	if err := d.worker.Prune(ctx, ch, d.gcPolicy...); err != nil {
		bklog.L.Warnf("buildkit cache gc: %v", err)
	}
	close(ch)
	_ = os.WriteFile(filepath.Join(d.root, "gc.stamp"), nil, 0o600)
	_ = os.Chtimes(filepath.Join(d.root, "gc.stamp"), time.Now(), time.Now())
}

// noRuncExecutor stands in for the runc executor on machines without runc.
type noRuncExecutor struct{}

func (noRuncExecutor) Run(context.Context, string, executor.Mount, []executor.Mount, executor.ProcessInfo, chan<- struct{}) (resourcestypes.Recorder, error) {
	return nil, ErrRuncMissing
}

func (noRuncExecutor) Exec(context.Context, string, executor.ProcessInfo) error {
	return ErrRuncMissing
}
