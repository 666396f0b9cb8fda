// Package container unpacks images of the local store into directories to look inside
// them: what `sealos create`, `mount`, `umount` and `rm` work on. A container here is a
// plain directory holding the image's flattened layers (whiteouts applied), not an
// overlay mount: it needs no privileges or kernel support, and changing it never changes
// the image.
package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cluster-image/sealos/apply/tree"
	"github.com/cluster-image/sealos/store"
)

// Container is one unpacked image.
type Container struct {
	Name        string    `json:"name"`
	Image       string    `json:"image"`
	ImageDigest string    `json:"imageDigest"`
	Path        string    `json:"path"` // the image's root filesystem
	Created     time.Time `json:"created"`
}

// ErrNotFound is returned for a container name that does not exist.
var ErrNotFound = errors.New("no such container")

const (
	stateFile = "container.json"
	rootfs    = "rootfs"
)

// validName reports whether name is a container name: [a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}.
// A loop, not a regexp: compiled at init, the {0,127} cost every sealos process 118 kB.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 128 || name[0] == '_' || name[0] == '.' || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Set is the containers kept in Dir (sealos uses <root>/containers).
type Set struct{ Dir string }

// Create unpacks ref (for a multi-platform index, the image opts select) into a new
// container called name; an empty name is made from the image's name. The container is
// complete when Create returns, or does not exist.
func (cs Set) Create(ctx context.Context, st *store.Store, ref, name string, opts ...store.Option) (*Container, error) {
	img, err := st.Image(ctx, ref, opts...)
	if err != nil {
		return nil, err
	}
	dg, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = cs.defaultName(ref)
	}
	if !validName(name) {
		return nil, fmt.Errorf("container name %q: use letters, digits, '_', '.' and '-'", name)
	}
	dir := filepath.Join(cs.Dir, name)
	if err := os.MkdirAll(cs.Dir, 0o700); err != nil {
		return nil, err
	}
	// the name is taken by creating its directory: two creates cannot share it
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %q exists: remove it with 'sealos rm %s' or give another --name", name, name)
		}
		return nil, err
	}
	c := &Container{Name: name, Image: ref, ImageDigest: dg.String(), Path: filepath.Join(dir, rootfs), Created: time.Now().UTC()}
	if err := unpack(ctx, img, c.Path); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("create %s from %s: %w", name, ref, err)
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, stateFile), b, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// unpack writes img's layers, flattened, into dir (safely: no entry lands outside it).
func unpack(ctx context.Context, img v1.Image, dir string) error {
	rc := mutate.Extract(img)
	defer rc.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			rc.Close() // stops the untar with an error
		case <-done:
		}
	}()
	if err := tree.Untar(rc, dir); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

// defaultName is the image's repository's last part with "-working-container" and a
// number when needed, as buildah names them.
func (cs Set) defaultName(ref string) string {
	n := ref
	if r, err := name.ParseReference(ref); err == nil {
		n = path.Base(r.Context().RepositoryStr())
	}
	if !validName(n) {
		n = "image"
	}
	n += "-working-container"
	name := n
	for i := 2; ; i++ {
		if _, err := os.Stat(filepath.Join(cs.Dir, name)); errors.Is(err, os.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s-%d", n, i)
	}
}

// List returns the containers, oldest first.
func (cs Set) List() ([]Container, error) {
	ents, err := os.ReadDir(cs.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Container
	for _, e := range ents {
		if c, err := cs.Get(e.Name()); err == nil {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Get returns the container called name.
func (cs Set) Get(name string) (*Container, error) {
	if !validName(name) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	b, err := os.ReadFile(filepath.Join(cs.Dir, name, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("container %q: %w", name, err)
	}
	return &c, nil
}

// Remove deletes the container called name and its files.
func (cs Set) Remove(name string) error {
	if _, err := cs.Get(name); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(cs.Dir, name))
}
