package detect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
)

// ImagesAnnotation is the Chart.yaml annotation that lists images a chart needs beyond
// what its templates render (a YAML list of strings or of {name, image} entries).
const ImagesAnnotation = "helm.sh/images"

// chartEntry is one chart under charts/: a directory with Chart.yaml or a chart archive.
type chartEntry struct {
	path   string // absolute path
	base   string // name used for <base>.values.yaml
	values string // absolute path of the values override, or ""
}

// findCharts lists the charts directly under charts/.
func findCharts(dir string) ([]chartEntry, error) {
	root := filepath.Join(dir, ChartsDir)
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ChartsDir, err)
	}
	var out []chartEntry
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		st, err := os.Stat(p) // follow symlinks
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", ChartsDir, err)
		}
		var base string
		switch {
		case st.IsDir():
			if _, err := os.Stat(filepath.Join(p, "Chart.yaml")); err != nil {
				continue
			}
			base = e.Name()
		case strings.HasSuffix(e.Name(), ".tgz"):
			base = strings.TrimSuffix(e.Name(), ".tgz")
		case strings.HasSuffix(e.Name(), ".tar.gz"):
			base = strings.TrimSuffix(e.Name(), ".tar.gz")
		default:
			continue
		}
		ce := chartEntry{path: p, base: base}
		if v := filepath.Join(root, base+".values.yaml"); fileExists(v) {
			ce.values = v
		}
		out = append(out, ce)
	}
	return out, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// detectCharts renders every chart under charts/ and scans what it renders.
func detectCharts(ctx context.Context, dir string, opts Options, res *Result) error {
	charts, err := findCharts(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range charts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := detectChart(ctx, dir, c, opts, res); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func detectChart(ctx context.Context, dir string, c chartEntry, opts Options, res *Result) error {
	rel := relPath(dir, c.path)
	ch, err := loader.Load(c.path)
	if err != nil {
		return fmt.Errorf("load chart %s: %w", rel, err)
	}
	if c.values == "" && ch.Name() != "" {
		// An archive's override may be named after the chart rather than the file.
		if v := filepath.Join(filepath.Dir(c.path), ch.Name()+".values.yaml"); fileExists(v) {
			c.values = v
		}
	}
	vals := map[string]any{}
	if c.values != "" {
		v, err := common.ReadValuesFile(c.values)
		if err != nil {
			return fmt.Errorf("chart %s: read values %s: %w", rel, relPath(dir, c.values), err)
		}
		vals = v
	}
	if err := checkDependencies(ch); err != nil {
		return fmt.Errorf("chart %s: %w", rel, err)
	}
	if err := chartutil.ProcessDependencies(ch, vals); err != nil {
		return fmt.Errorf("chart %s: dependencies: %w", rel, err)
	}
	// Images from the helm.sh/images annotation of the chart and its enabled subcharts.
	var annErr []error
	walkCharts(ch, func(c *chart.Chart) {
		if err := annotationImages(c, rel, res); err != nil {
			annErr = append(annErr, err)
		}
	})
	if err := errors.Join(annErr...); err != nil {
		return err
	}
	if ch.Metadata != nil && ch.Metadata.Type == "library" {
		return nil
	}
	caps := common.DefaultCapabilities.Copy()
	options := common.ReleaseOptions{Name: opts.ReleaseName, Namespace: opts.Namespace, Revision: 1, IsInstall: true}
	rv, err := util.ToRenderValuesWithSchemaValidation(ch, vals, options, caps, false)
	if err != nil {
		return fmt.Errorf("chart %s: values: %w", rel, err)
	}
	out, err := new(engine.Engine).RenderWithContext(ctx, ch, rv)
	if err != nil {
		return fmt.Errorf("render chart %s: %w", rel, err)
	}
	names := make([]string, 0, len(out))
	for k := range out {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, tpl := range names {
		b := path.Base(tpl)
		if b == "NOTES.txt" || strings.HasPrefix(b, "_") || strings.TrimSpace(out[tpl]) == "" {
			continue
		}
		scanOrLines([]byte(out[tpl]), rel, "template "+tpl+": ", res)
	}
	return nil
}

// checkDependencies fails when a dependency declared in Chart.yaml is not packaged in the
// chart's charts/ directory (Helm would silently render without it).
func checkDependencies(c *chart.Chart) error {
	if c.Metadata == nil {
		return nil
	}
	have := map[string]bool{}
	for _, d := range c.Dependencies() {
		have[d.Name()] = true
	}
	var missing []string
	for _, d := range c.Metadata.Dependencies {
		if !have[d.Name] {
			missing = append(missing, d.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("dependencies %s of chart %s are missing from its charts/ directory: run 'helm dependency build' first", strings.Join(missing, ", "), c.Name())
	}
	for _, d := range c.Dependencies() {
		if err := checkDependencies(d); err != nil {
			return err
		}
	}
	return nil
}

func walkCharts(c *chart.Chart, fn func(*chart.Chart)) {
	fn(c)
	for _, d := range c.Dependencies() {
		walkCharts(d, fn)
	}
}

// annotationImages adds the images listed in a chart's helm.sh/images annotation.
func annotationImages(c *chart.Chart, file string, res *Result) error {
	if c.Metadata == nil {
		return nil
	}
	ann, ok := c.Metadata.Annotations[ImagesAnnotation]
	if !ok || strings.TrimSpace(ann) == "" {
		return nil
	}
	reason := fmt.Sprintf("chart %s annotation %s", c.ChartFullPath(), ImagesAnnotation)
	var list []any
	if err := yaml.Unmarshal([]byte(ann), &list); err != nil {
		// Not a YAML list: one image per line or comma separated.
		for _, f := range strings.FieldsFunc(ann, func(r rune) bool { return r == '\n' || r == ',' }) {
			res.Add(f, Source{File: file, Reason: reason})
		}
		return nil
	}
	for _, e := range list {
		switch v := e.(type) {
		case string:
			res.Add(v, Source{File: file, Reason: reason})
		default:
			m, ok := asMap(v)
			img, _ := m["image"].(string)
			if !ok || img == "" {
				return fmt.Errorf("chart %s: annotation %s: entry %v has no image", file, ImagesAnnotation, v)
			}
			r := reason
			if n, _ := m["name"].(string); n != "" {
				r += " (" + n + ")"
			}
			res.Add(img, Source{File: file, Reason: r})
		}
	}
	return nil
}
