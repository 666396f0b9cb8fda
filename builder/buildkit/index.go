package buildkit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/pkg/reference"
	"github.com/gofrs/flock"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

const annotationImageName = "io.containerd.image.name"

// putIndex names desc in the OCI layout at dir under every ref, as BuildKit's ociindex does
// (io.containerd.image.name = ref, org.opencontainers.image.ref.name = its tag), replacing
// what had those names. It holds the layout's index.json.lock and replaces index.json
// atomically, so it is safe against the store and other builds writing at the same time.
func putIndex(dir string, desc ocispecs.Descriptor, refs []string) error {
	if len(refs) == 0 {
		return nil
	}
	lock := flock.New(filepath.Join(dir, ocispecs.ImageIndexFile+".lock"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ok, err := lock.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil || !ok {
		return fmt.Errorf("lock %s: %v", lock.Path(), err)
	}
	defer lock.Unlock()

	layout := filepath.Join(dir, ocispecs.ImageLayoutFile)
	if _, err := os.Stat(layout); os.IsNotExist(err) {
		if err := writeAtomic(layout, []byte(`{"imageLayoutVersion":"`+ocispecs.ImageLayoutVersion+`"}`)); err != nil {
			return err
		}
	}
	idxPath := filepath.Join(dir, ocispecs.ImageIndexFile)
	idx := ocispecs.Index{MediaType: ocispecs.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	if b, err := os.ReadFile(idxPath); err == nil && len(b) > 0 {
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("read %s: %w", idxPath, err)
		}
	} else if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, ref := range refs {
		d := desc
		d.Annotations = map[string]string{}
		for k, v := range desc.Annotations {
			d.Annotations[k] = v
		}
		tag := ref
		if spec, err := reference.Parse(ref); err == nil {
			tag = spec.Object
		}
		d.Annotations[annotationImageName] = ref
		d.Annotations[ocispecs.AnnotationRefName] = tag
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			if m.Annotations[annotationImageName] != ref {
				kept = append(kept, m)
			}
		}
		idx.Manifests = append(kept, d)
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeAtomic(idxPath, b)
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}
