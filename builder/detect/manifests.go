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
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	yaml "go.yaml.in/yaml/v3"

	"github.com/cluster-image/sealos/imagespec"
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

// detectManifests scans every YAML or JSON file and every *.tmpl file under manifests/,
// as sealos does. A template is rendered with opts.Env when there is one; a file a YAML
// parser refuses is read line by line, with a warning.
func detectManifests(ctx context.Context, dir string, opts Options, res *Result) error {
	root := filepath.Join(dir, ManifestsDir)
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json", imagespec.TemplateSuffix:
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
		if !strings.HasSuffix(strings.ToLower(f), imagespec.TemplateSuffix) {
			scanOrLines(data, rel, "", res)
			continue
		}
		if opts.Env == nil {
			ScanLines(data, rel, "", res)
			continue
		}
		out, err := renderTemplate(rel, data, opts.Env)
		if err != nil {
			res.warn(rel, 0, fmt.Sprintf("cannot render with the image env (%v): read line by line", err))
			ScanLines(data, rel, "", res)
			continue
		}
		inner := strings.ToLower(filepath.Ext(strings.TrimSuffix(f, filepath.Ext(f))))
		if inner == ".yaml" || inner == ".yml" || inner == ".json" {
			scanOrLines(out, rel, "rendered: ", res)
		} else {
			ScanLines(out, rel, "rendered: ", res)
		}
	}
	return errors.Join(errs...)
}

// renderTemplate renders a *.tmpl file as the apply engine does: Go templates with the
// sprig functions, missing keys empty.
func renderTemplate(name string, src []byte, env map[string]string) ([]byte, error) {
	t, err := template.New(name).Funcs(sprig.TxtFuncMap()).Option("missingkey=zero").Parse(string(src))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, env); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// scanOrLines scans data as YAML, or, when a YAML parser refuses it, line by line with a
// warning that names the line the parser stopped at.
func scanOrLines(data []byte, file, prefix string, res *Result) {
	docs, err := decodeYAML(data)
	if err != nil {
		res.warn(file, err.line, fmt.Sprintf("%snot valid YAML (%s): image: fields read line by line", prefix, err.msg))
		ScanLines(data, file, prefix, res)
		return
	}
	for _, d := range docs {
		scanObject(d, file, prefix, res)
	}
}

// yamlError is why YAML was refused and where (line 0: unknown).
type yamlError struct {
	line int
	msg  string
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

func newYAMLError(err error, fallback int) *yamlError {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	e := &yamlError{line: fallback, msg: strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e.line, _ = strconv.Atoi(m[1])
		e.msg = msg[len(m[0]):]
	}
	return e
}

// decodeYAML decodes every document of data, all or nothing.
func decodeYAML(data []byte) ([]any, *yamlError) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, newYAMLError(err, 0)
		}
		var doc any
		if err := node.Decode(&doc); err != nil {
			if l := complexKeyLine(&node); l > 0 && strings.Contains(err.Error(), "invalid map key") {
				return nil, &yamlError{line: l, msg: "a key that is a mapping, as an unquoted {{ ... }} template reads"}
			}
			return nil, newYAMLError(err, 0)
		}
		docs = append(docs, doc)
	}
}

// complexKeyLine is the line of the first mapping key that is itself a mapping or a
// sequence (what an unquoted {{ ... }} becomes), the one error yaml reports without one.
func complexKeyLine(n *yaml.Node) int {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Kind == yaml.MappingNode || k.Kind == yaml.SequenceNode {
				return k.Line
			}
		}
	}
	for _, c := range n.Content {
		if l := complexKeyLine(c); l > 0 {
			return l
		}
	}
	return 0
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
