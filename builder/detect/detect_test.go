package detect

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
)

const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(c), 0o644))
	}
}

const deployTpl = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  template:
    spec:
      {{- if .Values.init.enabled }}
      initContainers:
      - name: init
        image: "{{ .Values.init.image }}"
      {{- end }}
      containers:
      - name: web
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
{{- if .Values.extra }}
---
apiVersion: v1
kind: Pod
metadata:
  name: extra
spec:
  containers:
  - name: extra
    image: {{ .Values.extra }}
{{- end }}
`

// testContext writes a build context with charts (directory with subcharts, archive),
// manifests of every workload kind, image lists and a .sealignore.
func testContext(t *testing.T) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		// app: two subcharts, one enabled by condition, one disabled by the override file.
		"charts/app/Chart.yaml": `apiVersion: v2
name: app
version: 1.0.0
annotations:
  helm.sh/images: |
    - name: sidecar
      image: quay.io/app/sidecar:v2
dependencies:
- name: db
  version: 1.0.0
  condition: db.enabled
- name: cache
  version: 1.0.0
  condition: cache.enabled
`,
		"charts/app/values.yaml": `image:
  repository: registry.example.com/app/web
  tag: "1.0"
init:
  enabled: false
  image: busybox:1.36
extra: ""
db:
  enabled: true
cache:
  enabled: true
`,
		"charts/app/templates/deploy.yaml":  deployTpl,
		"charts/app/templates/NOTES.txt":    "image: not-an-image:{{ .Values.image.tag }}",
		"charts/app/templates/_helpers.tpl": `{{- define "x" }}image: nope{{ end }}`,
		"charts/app/charts/db/Chart.yaml":   "apiVersion: v2\nname: db\nversion: 1.0.0\n",
		"charts/app/charts/db/values.yaml":  "image: postgres:16\n",
		"charts/app/charts/db/templates/sts.yaml": `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  template:
    spec:
      containers:
      - name: db
        image: {{ .Values.image }}
`,
		"charts/app/charts/cache/Chart.yaml": "apiVersion: v2\nname: cache\nversion: 1.0.0\n",
		"charts/app/charts/cache/templates/ds.yaml": `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: cache
spec:
  template:
    spec:
      containers:
      - name: cache
        image: redis:7
`,
		// Override beside the chart: init on, tag changed, cache subchart off, db image pinned.
		"charts/app.values.yaml": `image:
  tag: "2.0"
init:
  enabled: true
cache:
  enabled: false
db:
  image: postgres:16@` + dgst + `
`,
		// Not a chart: ignored.
		"charts/README.md": "no chart here",

		"manifests/workloads.yaml": `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers: [{name: i, image: "docker.io/library/alpine:3.20"}]
  containers: [{name: c, image: nginx:1.25}]
  ephemeralContainers: [{name: e, image: "ghcr.io/debug/tools@` + dgst + `"}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  template:
    spec:
      containers: [{name: c, image: "k8s.gcr.io/pause:3.9"}]
---
# comment only document
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec:
  template:
    spec:
      containers: [{name: c, image: "localhost:5000/tools/job:v1"}]
`,
		"manifests/sub/cron.yml": `apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: c, image: "quay.io/cron/runner:v3"}]
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: d}
  spec:
    template:
      spec:
        containers: [{name: c, image: "nginx:1.25"}]
`,
		"manifests/crd.yaml": `apiVersion: example.com/v1
kind: Thing
metadata: {name: t}
spec:
  components:
  - image: quay.io/thing/operand:v1
    config: {image: quay.io/thing/config:v1}
  notImage: quay.io/not/this:v1
  image: {repository: not-a-string}
`,
		"manifests/notes.txt": "image: ignored:v1",

		"images/shim/list": `# core images
nginx:1.25

quay.io/extra/one:v1   # trailing comment
registry.example.com/ignored/thing:v1
`,
		"images/shim/more": "ghcr.io/pinned/app:v2@" + dgst + "\n",
		".sealignore":      "# never ship this\nregistry.example.com/ignored/*\n",
	})

	// A packaged chart with its own override file.
	src := filepath.Join(t.TempDir(), "pkg")
	writeFiles(t, src, map[string]string{
		"Chart.yaml":          "apiVersion: v2\nname: pkg\nversion: 0.1.0\n",
		"values.yaml":         "image: quay.io/pkg/default:v1\n",
		"templates/job.yaml":  "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pj}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: \"{{ .Values.image }}\"}]\n",
		"templates/cm.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {image: quay.io/cm/data:v1}\n",
		"templates/hook.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hook\n  annotations: {\"helm.sh/hook\": post-install}\nspec:\n  containers: [{name: h, image: quay.io/pkg/hook:v1}]\n",
	})
	ch, err := loader.Load(src)
	require.NoError(t, err)
	archive, err := chartutil.Save(ch, filepath.Join(dir, "charts"))
	require.NoError(t, err)
	require.Equal(t, "pkg-0.1.0.tgz", filepath.Base(archive))
	writeFiles(t, dir, map[string]string{"charts/pkg-0.1.0.values.yaml": "image: quay.io/pkg/override:v9\n"})
	return dir
}

func TestDetect(t *testing.T) {
	dir := testContext(t)
	imgs, err := Detect(context.Background(), dir, Options{})
	require.NoError(t, err)

	got := map[string][]string{}
	for _, i := range imgs {
		got[i.Ref] = i.Files()
	}
	want := map[string][]string{
		"quay.io/app/sidecar:v2":           {"charts/app"},
		"busybox:1.36":                     {"charts/app"},
		"registry.example.com/app/web:2.0": {"charts/app"},
		"postgres:16@" + dgst:              {"charts/app"},
		"quay.io/pkg/override:v9":          {"charts/pkg-0.1.0.tgz"},
		"quay.io/pkg/hook:v1":              {"charts/pkg-0.1.0.tgz"},
		"quay.io/cm/data:v1":               {"charts/pkg-0.1.0.tgz"},
		"docker.io/library/alpine:3.20":    {"manifests/workloads.yaml"},
		"nginx:1.25":                       {"manifests/sub/cron.yml", "manifests/workloads.yaml", "images/shim/list"},
		"ghcr.io/debug/tools@" + dgst:      {"manifests/workloads.yaml"},
		"k8s.gcr.io/pause:3.9":             {"manifests/workloads.yaml"},
		"localhost:5000/tools/job:v1":      {"manifests/workloads.yaml"},
		"quay.io/cron/runner:v3":           {"manifests/sub/cron.yml"},
		"quay.io/thing/operand:v1":         {"manifests/crd.yaml"},
		"quay.io/thing/config:v1":          {"manifests/crd.yaml"},
		"quay.io/extra/one:v1":             {"images/shim/list"},
		"ghcr.io/pinned/app:v2@" + dgst:    {"images/shim/more"},
	}
	for k := range got {
		sort.Strings(got[k])
	}
	for k := range want {
		sort.Strings(want[k])
	}
	assert.Equal(t, want, got)

	// Reasons say what named the image.
	for _, i := range imgs {
		switch i.Ref {
		case "busybox:1.36":
			assert.Equal(t, "template app/templates/deploy.yaml: Deployment/dryrun-web init container init", i.Sources[0].Reason)
		case "postgres:16@" + dgst:
			assert.Equal(t, "template app/charts/db/templates/sts.yaml: StatefulSet/db container db", i.Sources[0].Reason)
			assert.Equal(t, "docker.io/library/postgres:16@"+dgst, i.Name)
			assert.Equal(t, "16", i.Tag())
		case "ghcr.io/debug/tools@" + dgst:
			assert.Equal(t, "Pod/p ephemeral container e", i.Sources[0].Reason)
			assert.Equal(t, "", i.Tag())
		case "quay.io/thing/config:v1":
			assert.Equal(t, "Thing/t field spec.components[0].config.image", i.Sources[0].Reason)
		case "quay.io/extra/one:v1":
			assert.Equal(t, "image list, line 4", i.Sources[0].Reason)
		case "quay.io/app/sidecar:v2":
			assert.Equal(t, "chart app annotation helm.sh/images (sidecar)", i.Sources[0].Reason)
		case "nginx:1.25":
			assert.Equal(t, "docker.io/library/nginx:1.25", i.Name)
		}
	}
}

func TestDetectDefaultsWithoutOverride(t *testing.T) {
	dir := testContext(t)
	require.NoError(t, os.Remove(filepath.Join(dir, "charts/app.values.yaml")))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "manifests")))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "images")))
	imgs, err := Detect(context.Background(), dir, Options{})
	require.NoError(t, err)
	var refs []string
	for _, i := range imgs {
		refs = append(refs, i.Ref)
	}
	assert.ElementsMatch(t, []string{
		"quay.io/app/sidecar:v2", "registry.example.com/app/web:1.0", "postgres:16", "redis:7",
		"quay.io/pkg/override:v9", "quay.io/pkg/hook:v1", "quay.io/cm/data:v1",
	}, refs)

	// The override of an archive may be named after the chart instead of the file.
	require.NoError(t, os.Rename(filepath.Join(dir, "charts/pkg-0.1.0.values.yaml"), filepath.Join(dir, "charts/pkg.values.yaml")))
	writeFiles(t, dir, map[string]string{"charts/pkg.values.yaml": "image: quay.io/pkg/by-name:v2\n"})
	imgs, err = Detect(context.Background(), dir, Options{})
	require.NoError(t, err)
	refs = nil
	for _, i := range imgs {
		refs = append(refs, i.Ref)
	}
	assert.Contains(t, refs, "quay.io/pkg/by-name:v2")
	assert.NotContains(t, refs, "quay.io/pkg/override:v9")
}

func TestDetectErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"bad ref in list", map[string]string{"images/shim/l": "ok:v1\nBad Image!!\n"},
			[]string{`"Bad Image!!"`, "images/shim/l", "line 2"}},
		{"bad digest in manifest", map[string]string{"manifests/m.yaml": "kind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: 'x@sha256:abc'}]\n"},
			[]string{`"x@sha256:abc"`, "manifests/m.yaml", "Pod/p container c"}},
		{"bad template", map[string]string{"charts/c/Chart.yaml": "apiVersion: v2\nname: c\nversion: 1.0.0\n", "charts/c/templates/x.yaml": "{{ .Values.nope.deeper }}"},
			[]string{"render chart charts/c"}},
		{"archive list line", map[string]string{"images/skopeo/tar.txt": "# saved with skopeo\ndocker-archive:x.tar\n"},
			[]string{"images/skopeo/tar.txt:2:", "want docker-archive:PATH@NAME or oci-archive:PATH@NAME"}},
		{"archive transport", map[string]string{"images/skopeo/tar.txt": "dir:x@a/b:v1\n", "images/skopeo/x": ""},
			[]string{"images/skopeo/tar.txt:1:", `transport "dir"`}},
		{"missing archive", map[string]string{"images/skopeo/tar.txt": "oci-archive:gone.tar@a/b:v1\n"},
			[]string{"images/skopeo/tar.txt:1:", "archive gone.tar", "no such file"}},
		{"missing dependency", map[string]string{"charts/c/Chart.yaml": "apiVersion: v2\nname: c\nversion: 1.0.0\ndependencies:\n- name: gone\n  version: 1.0.0\n"},
			[]string{"charts/c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			_, err := Detect(context.Background(), dir, Options{})
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestMatchImage(t *testing.T) {
	for _, tt := range []struct {
		pattern, ref string
		want         bool
	}{
		{"nginx", "nginx:1.25", true},
		{"nginx", "nginx@" + dgst, true},
		{"nginx:1.25", "nginx:1.26", false},
		{"quay.io/*", "quay.io/a/b:v1", true},
		{"*:debug", "quay.io/a/b:debug", true},
		{"*:debug", "quay.io/a/b:v1", false},
		{"localhost:5000/x", "localhost:5000/x:v1", true},
	} {
		assert.Equal(t, tt.want, matchImage(tt.pattern, tt.ref), "%s vs %s", tt.pattern, tt.ref)
	}
	assert.True(t, strings.HasPrefix(dgst, "sha256:"))
}
