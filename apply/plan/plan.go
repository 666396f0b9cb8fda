// Package plan computes what an apply will do, before anything is touched: the images and
// their types, the merged rootfs (rootfs and patch images overlaid in order) and the
// application trees unpacked on this machine, the env of every host, and each host's
// rendered tree. A Plan is an immutable value; the apply engine only reads it.
package plan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cluster-image/sealos/apply/clusterfile"
	"github.com/cluster-image/sealos/apply/tree"
	"github.com/cluster-image/sealos/imagespec"
	"github.com/cluster-image/sealos/store"
)

// Source gives images by reference (the local store, pulling when missing).
type Source interface {
	Image(ctx context.Context, ref string) (v1.Image, error)
}

// Image is one cluster image of the plan.
type Image struct {
	Ref        string
	Digest     string
	Type       imagespec.Type
	Labels     map[string]string
	Env        []string // the image's ENV (with the rootfs defaults for rootfs images)
	Entrypoint []string
	Cmd        []string
	// Warnings are about its labels (imagespec.Check): accepted, but probably not meant.
	Warnings []string
	layers   []v1.Layer
}

// Commands are the image's ENTRYPOINT items then its CMD items, each a shell command.
func (i Image) Commands() []string { return append(slices.Clone(i.Entrypoint), i.Cmd...) }

// App is an application image with its tree (rendered with the first master's env).
type App struct {
	Image Image
	Name  string // directory name on the master
	Tree  *tree.Tree
	// Env is the env its templates and commands see: image ENV (rootfs images, then this
	// one) < spec.env < -e < the first master's host env.
	Env map[string]string
}

// Plan is what an apply does.
type Plan struct {
	Cluster  string
	Images   []Image // in the order given
	Hosts    []string
	Masters  []string
	Registry []string // hosts that serve the registry
	// Labels of the merged rootfs: the rootfs images' labels overlaid in order.
	Labels map[string]string
	// Env is the env without host env; HostEnv the full env of each host.
	Env     map[string]string
	HostEnv map[string]map[string]string
	// Rootfs is the merged, rendered rootfs for each host (nil when there is no rootfs or
	// patch image).
	Rootfs map[string]*tree.Tree
	Apps   []App
}

// Options are the inputs of Build.
type Options struct {
	Cluster *clusterfile.Cluster // hosts, roles, spec.env, spec.image
	Env     []string             // -e KEY=VALUE, over spec.env
	Source  Source
	// WorkDir caches unpacked trees between runs (<root>/clusters/<name>/work).
	WorkDir string
}

// Build computes the plan: reads the images, unpacks (or reuses) their trees, renders
// templates. It writes nothing but WorkDir.
func Build(ctx context.Context, o Options) (*Plan, error) {
	c := o.Cluster
	p := &Plan{
		Cluster:  c.Metadata.Name,
		Hosts:    c.IPs(),
		Masters:  c.Masters(),
		Registry: c.RegistryHosts(),
		Labels:   map[string]string{},
		HostEnv:  map[string]map[string]string{},
		Rootfs:   map[string]*tree.Tree{},
	}
	if len(p.Masters) == 0 {
		return nil, fmt.Errorf("plan: no master: give --masters or a host with role master")
	}
	if len(c.Spec.Image) == 0 {
		return nil, fmt.Errorf("plan: no image to run")
	}
	for _, ref := range c.Spec.Image {
		img, err := loadImage(ctx, o.Source, ref)
		if err != nil {
			return nil, err
		}
		p.Images = append(p.Images, img)
	}
	if cmds := c.Spec.Command; len(cmds) > 0 {
		last := &p.Images[len(p.Images)-1]
		last.Cmd = slices.Clone(cmds)
	}

	// Env: image ENV (rootfs and patch images in order) < spec.env < -e < host env.
	var base []string
	for _, img := range p.Images {
		if img.Type != imagespec.Application {
			base = append(base, img.Env...)
			for k, v := range img.Labels {
				p.Labels[k] = v
			}
		}
	}
	over := append(slices.Clone(c.Spec.Env), o.Env...)
	p.Env = imagespec.EnvMap(append(slices.Clone(base), over...))
	for _, h := range p.Hosts {
		var hostEnv []string
		if g, ok := c.HostOf(h); ok {
			hostEnv = g.Env
		}
		p.HostEnv[h] = imagespec.EnvMap(append(append(slices.Clone(base), over...), hostEnv...))
	}

	// The merged rootfs, then each host's rendering of it.
	var layers []v1.Layer
	for _, img := range p.Images {
		if img.Type != imagespec.Application {
			layers = append(layers, img.layers...)
		}
	}
	keep := map[string]bool{}
	if len(layers) > 0 {
		t, key, err := unpack(o.WorkDir, "rootfs", layers)
		if err != nil {
			return nil, err
		}
		keep[key] = true
		for _, h := range p.Hosts {
			r, err := t.Render(p.HostEnv[h])
			if err != nil {
				return nil, fmt.Errorf("plan: render the rootfs for %s: %w", h, err)
			}
			p.Rootfs[h] = r
		}
	}
	master := p.Masters[0]
	for i, img := range p.Images {
		if img.Type != imagespec.Application {
			continue
		}
		t, key, err := unpack(o.WorkDir, "app", img.layers)
		if err != nil {
			return nil, err
		}
		keep[key] = true
		var hostEnv []string
		if g, ok := c.HostOf(master); ok {
			hostEnv = g.Env
		}
		env := imagespec.EnvMap(append(append(append(slices.Clone(base), img.Env...), over...), hostEnv...))
		r, err := t.Render(env)
		if err != nil {
			return nil, fmt.Errorf("plan: render %s: %w", img.Ref, err)
		}
		p.Apps = append(p.Apps, App{Image: img, Name: fmt.Sprintf("%02d-%s", i, AppName(img.Ref)), Tree: r, Env: env})
	}
	prune(o.WorkDir, keep)
	return p, nil
}

// AppName turns a reference into a directory name.
func AppName(ref string) string {
	r := strings.NewReplacer("/", "_", ":", "_", "@", "_")
	return r.Replace(ref)
}

func loadImage(ctx context.Context, src Source, ref string) (Image, error) {
	img, err := src.Image(ctx, ref)
	if err != nil {
		return Image{}, fmt.Errorf("plan: image %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return Image{}, fmt.Errorf("plan: image %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("plan: image %s: config: %w", ref, err)
	}
	labels := cf.Config.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	if err := imagespec.Validate(labels); err != nil {
		return Image{}, fmt.Errorf("plan: image %s: %w", ref, err)
	}
	var warnings []string
	for _, w := range imagespec.Check(labels) {
		warnings = append(warnings, fmt.Sprintf("image %s: %s", ref, w.Message))
	}
	t := imagespec.TypeOf(labels)
	layers, err := img.Layers()
	if err != nil {
		return Image{}, fmt.Errorf("plan: image %s: layers: %w", ref, err)
	}
	return Image{
		Ref: ref, Digest: d.String(), Type: t, Labels: labels, Warnings: warnings,
		Env:        imagespec.EnvWithDefaults(t, cf.Config.Env),
		Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd,
		layers: layers,
	}, nil
}

// unpack flattens layers (whiteouts applied across all of them) into a directory of
// workDir named after the layer digests, reusing it when a previous run made it, and
// returns its tree. The manifest is cached beside it, so an unchanged re-run hashes nothing.
func unpack(workDir, kind string, layers []v1.Layer) (*tree.Tree, string, error) {
	h := sha256.New()
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, "", err
		}
		fmt.Fprintln(h, d.String())
	}
	key := kind + "-" + hex.EncodeToString(h.Sum(nil))[:24]
	dir := filepath.Join(workDir, key)
	manifestFile := dir + ".manifest"
	if b, err := os.ReadFile(manifestFile); err == nil {
		if m, err := tree.ParseManifest(b); err == nil {
			if _, err := os.Stat(dir); err == nil {
				return &tree.Tree{Base: dir, BaseManifest: m}, key, nil
			}
		}
	}
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return nil, "", err
	}
	tmp, err := os.MkdirTemp(workDir, key+".tmp-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(tmp)
	// One layer is read as it is; several are flattened first (whiteouts across layers).
	var rc io.ReadCloser
	if len(layers) == 1 {
		if rc, err = layers[0].Uncompressed(); err != nil {
			return nil, "", fmt.Errorf("plan: unpack %s: %w", kind, err)
		}
	} else {
		img, err := mutate.AppendLayers(empty.Image, layers...)
		if err != nil {
			return nil, "", err
		}
		rc = mutate.Extract(img)
	}
	m, err := tree.UntarManifest(rc, tmp)
	rc.Close()
	if err != nil {
		return nil, "", fmt.Errorf("plan: unpack %s: %w", kind, err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(manifestFile, m.Marshal(), 0o600); err != nil {
		return nil, "", err
	}
	return &tree.Tree{Base: dir, BaseManifest: m}, key, nil
}

// prune removes trees of earlier runs that this plan does not use.
func prune(workDir string, keep map[string]bool) {
	ents, err := os.ReadDir(workDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := strings.TrimSuffix(e.Name(), ".manifest")
		if !keep[name] {
			os.RemoveAll(filepath.Join(workDir, e.Name()))
		}
	}
}

// Fingerprint is a short digest of parts (images, env, commands), for deciding whether a
// step already done needs doing again.
func Fingerprint(parts ...any) string {
	b, _ := json.Marshal(parts)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])[:24]
}

// StoreSource reads images from the local store. When pull is set, an image the store
// lacks is pulled with it first; otherwise it is an error saying how to get it.
func StoreSource(st *store.Store, pull func(ctx context.Context, ref string) error) Source {
	return storeSource{st, pull}
}

type storeSource struct {
	st   *store.Store
	pull func(ctx context.Context, ref string) error
}

func (s storeSource) Image(ctx context.Context, ref string) (v1.Image, error) {
	img, err := s.st.Image(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if s.pull == nil {
			return nil, fmt.Errorf("%w: build it, 'sealos pull %s' or 'sealos load' it first", err, ref)
		}
		if perr := s.pull(ctx, ref); perr != nil {
			return nil, fmt.Errorf("not in the local store, and pulling it failed: %w", perr)
		}
		img, err = s.st.Image(ctx, ref)
	}
	return img, err
}
