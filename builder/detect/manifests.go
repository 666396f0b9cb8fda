package detect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// podSpecPaths says where each workload kind keeps its pod spec.
var podSpecPaths = map[string][]string{
	"Pod":         {"spec"},
	"Deployment":  {"spec", "template", "spec"},
	"StatefulSet": {"spec", "template", "spec"},
	"DaemonSet":   {"spec", "template", "spec"},
	"ReplicaSet":  {"spec", "template", "spec"},
	"Job":         {"spec", "template", "spec"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template", "spec"},
}

var containerFields = []string{"initContainers", "containers", "ephemeralContainers"}

// detectManifests parses every YAML or JSON file under manifests/.
func detectManifests(ctx context.Context, dir string, res *Result) error {
	root := filepath.Join(dir, ManifestsDir)
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json":
				files = append(files, p)
			}
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", ManifestsDir, err)
	}
	sort.Strings(files)
	var errs []error
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rel := relPath(dir, f)
		if err := ScanYAML(data, rel, "", res); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ScanYAML adds the images named by the (multi-document) YAML data to res. file names the
// source; prefix starts every reason (e.g. the chart template that produced data).
func ScanYAML(data []byte, file, prefix string, res *Result) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for n := 1; ; n++ {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			where := file
			if prefix != "" {
				where += " (" + strings.TrimSuffix(prefix, ": ") + ")"
			}
			return fmt.Errorf("parse %s, document %d: %w", where, n, err)
		}
		scanObject(doc, file, prefix, res)
	}
}

// scanObject finds images in one decoded Kubernetes object (or a List of them).
func scanObject(doc any, file, prefix string, res *Result) {
	obj, ok := asMap(doc)
	if !ok {
		return
	}
	kind, _ := obj["kind"].(string)
	objName := ""
	if md, ok := asMap(obj["metadata"]); ok {
		objName, _ = md["name"].(string)
	}
	what := kind
	if objName != "" {
		what += "/" + objName
	}
	if items, ok := obj["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		for _, it := range items {
			scanObject(it, file, prefix, res)
		}
		return
	}
	if specPath, ok := podSpecPaths[kind]; ok {
		spec := any(obj)
		for _, k := range specPath {
			m, ok := asMap(spec)
			if !ok {
				spec = nil
				break
			}
			spec = m[k]
		}
		if ps, ok := asMap(spec); ok {
			for _, field := range containerFields {
				list, _ := ps[field].([]any)
				for _, c := range list {
					cm, ok := asMap(c)
					if !ok {
						continue
					}
					img, _ := cm["image"].(string)
					cname, _ := cm["name"].(string)
					res.Add(img, Source{File: file, Reason: fmt.Sprintf("%s%s %s %s", prefix, what, singular(field), cname)})
				}
			}
		}
		return
	}
	walkImages(obj, "", func(fieldPath, img string) {
		res.Add(img, Source{File: file, Reason: fmt.Sprintf("%s%s field %s", prefix, what, fieldPath)})
	})
}

func singular(field string) string {
	switch field {
	case "initContainers":
		return "init container"
	case "ephemeralContainers":
		return "ephemeral container"
	}
	return "container"
}

// walkImages calls fn for every string field named "image" anywhere under v.
func walkImages(v any, at string, fn func(fieldPath, img string)) {
	if m, ok := asMap(v); ok {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if at != "" {
				p = at + "." + k
			}
			if s, ok := m[k].(string); ok && k == "image" {
				fn(p, s)
				continue
			}
			walkImages(m[k], p, fn)
		}
		return
	}
	if l, ok := v.([]any); ok {
		for i, e := range l {
			walkImages(e, fmt.Sprintf("%s[%d]", at, i), fn)
		}
	}
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}
