package apply

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/cluster-image/sealos/apply/clusterfile"
)

// ClusterDir is where a cluster's state lives: <root>/clusters/<name>.
func ClusterDir(root, name string) string { return filepath.Join(root, "clusters", name) }

// StatePath is the cluster's Clusterfile with status.
func StatePath(root, name string) string { return filepath.Join(ClusterDir(root, name), "Clusterfile") }

// LoadState reads the recorded Clusterfile of cluster name; os.ErrNotExist when none.
func LoadState(root, name string) (*clusterfile.Cluster, error) {
	p := StatePath(root, name)
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("cluster %q: %w (no %s)", name, os.ErrNotExist, p)
	}
	return clusterfile.Load(p)
}

// lockCluster takes the cluster's lock, so two applies never run on one cluster at once.
func lockCluster(root, name string) (func(), error) {
	dir := ClusterDir(root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	l := flock.New(filepath.Join(dir, "lock"))
	ok, err := l.TryLock()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("cluster %q is busy: another sealos is applying to it (lock %s)", name, l.Path())
	}
	return func() { _ = l.Unlock() }, nil
}

// state is the Clusterfile being applied, saved after every change.
type state struct {
	mu   sync.Mutex
	path string
	c    *clusterfile.Cluster
}

func (s *state) save() error {
	s.c.Status.Updated = time.Now().UTC()
	if err := s.c.Save(s.path); err != nil {
		return fmt.Errorf("save state %s: %w", s.path, err)
	}
	return nil
}

// done returns the recorded step name on host when it succeeded with key.
func (s *state) done(name, host, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.c.Status.Steps {
		if st.Name == name && st.Host == host {
			return st.Result == clusterfile.ResultOK && st.Key == key
		}
	}
	return false
}

// record replaces the step (name, host) and saves.
func (s *state) record(st clusterfile.Step) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	steps := s.c.Status.Steps
	replaced := false
	for i := range steps {
		if steps[i].Name == st.Name && steps[i].Host == st.Host {
			steps[i] = st
			replaced = true
		}
	}
	if !replaced {
		s.c.Status.Steps = append(steps, st)
	}
	return s.save()
}

func (s *state) update(fn func(c *clusterfile.Cluster)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.c)
	return s.save()
}

// forgetHosts drops the steps of hosts no longer in the cluster.
func (s *state) forgetHosts(keep []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := map[string]bool{}
	for _, h := range keep {
		in[h] = true
	}
	var steps []clusterfile.Step
	for _, st := range s.c.Status.Steps {
		if st.Host == "" || in[st.Host] {
			steps = append(steps, st)
		}
	}
	s.c.Status.Steps = steps
}
