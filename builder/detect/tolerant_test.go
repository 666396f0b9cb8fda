package detect

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// detectAll runs Detect and returns the images by reference and the warnings as printed.
func detectAll(t *testing.T, dir string, opts Options) (map[string]Image, []string) {
	t.Helper()
	var warnings []string
	opts.Warn = func(w Warning) { warnings = append(warnings, w.String()) }
	imgs, err := Detect(context.Background(), dir, opts)
	require.NoError(t, err)
	byRef := map[string]Image{}
	for _, i := range imgs {
		byRef[i.Ref] = i
	}
	return byRef, warnings
}

func refsOf(m map[string]Image) []string {
	var out []string
	for r := range m {
		out = append(out, r)
	}
	return out
}

const tmplDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: web
        image: {{ .registryDomain }}:{{ .registryPort }}/app/web:{{ .tag }}
      - name: side
        image: docker.io/library/busybox:1.36
`

func TestDetectTemplates(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"manifests/web.yaml.tmpl":   tmplDeployment,
		"manifests/sub/notes.tmpl":  "some text\nimage: quay.io/notes/img:v2 # a comment\n",
		"manifests/conf.toml.tmpl":  "sandbox_image = \"{{ .registryDomain }}/pause:3.9\"\n",
		"etc/not-scanned.yaml.tmpl": "image: quay.io/not/scanned:v1\n",
	})

	// With the image env, templates are rendered as apply renders them, then parsed.
	imgs, warnings := detectAll(t, dir, Options{Env: map[string]string{"registryDomain": "sealos.hub", "registryPort": "5000", "tag": "v1"}})
	assert.ElementsMatch(t, []string{"sealos.hub:5000/app/web:v1", "docker.io/library/busybox:1.36", "quay.io/notes/img:v2"}, refsOf(imgs))
	assert.Equal(t, []Source{{File: "manifests/web.yaml.tmpl", Reason: "rendered: Deployment/web container web"}}, imgs["sealos.hub:5000/app/web:v1"].Sources)
	assert.Equal(t, []Source{{File: "manifests/sub/notes.tmpl", Reason: "rendered: line 2"}}, imgs["quay.io/notes/img:v2"].Sources)
	assert.Empty(t, warnings)

	// Without it, they are read line by line: fixed images are found, templated ones
	// skipped with a warning that names the line.
	imgs, warnings = detectAll(t, dir, Options{})
	assert.ElementsMatch(t, []string{"docker.io/library/busybox:1.36", "quay.io/notes/img:v2"}, refsOf(imgs))
	assert.Equal(t, []Source{{File: "manifests/web.yaml.tmpl", Reason: "line 12"}}, imgs["docker.io/library/busybox:1.36"].Sources)
	assert.Equal(t, []string{`manifests/web.yaml.tmpl:10: image "{{ .registryDomain }}:{{ .registryPort }}/app/web:{{ .tag }}" is an unrendered template: skipped`}, warnings)

	// A template that does not render is read line by line, with a warning.
	writeFiles(t, dir, map[string]string{"manifests/web.yaml.tmpl": tmplDeployment + "{{ if }}\n"})
	imgs, warnings = detectAll(t, dir, Options{Env: map[string]string{}})
	assert.Contains(t, imgs, "docker.io/library/busybox:1.36")
	require.Len(t, warnings, 2)
	assert.Contains(t, warnings[0], "manifests/web.yaml.tmpl: cannot render with the image env")
	assert.Contains(t, warnings[1], "manifests/web.yaml.tmpl:10: image")
}

func TestDetectInvalidYAMLFallsBackToLines(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		// Duplicate keys: kubectl and sealos take it, a strict YAML parser does not.
		"manifests/dup.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: p
  name: p2
spec:
  containers:
  - name: c
    image: "quay.io/dup/img:v1"
`,
		// A Helm fragment left in a plain manifest.
		"manifests/helmish.yaml": `kind: Deployment
spec:
  template:
    spec:
      containers:
      - image: {{ .Values.image }}
      - image: 'quay.io/helmish/sidecar:v2'
      # image: quay.io/commented/out:v1
      - imagePullPolicy: Always
`,
		"manifests/ok.yaml": "kind: Pod\nmetadata: {name: ok}\nspec:\n  containers: [{name: c, image: 'quay.io/ok/img:v3'}]\n",
	})
	imgs, warnings := detectAll(t, dir, Options{})
	assert.ElementsMatch(t, []string{"quay.io/dup/img:v1", "quay.io/helmish/sidecar:v2", "quay.io/ok/img:v3"}, refsOf(imgs))
	assert.Equal(t, []Source{{File: "manifests/dup.yaml", Reason: "line 9"}}, imgs["quay.io/dup/img:v1"].Sources)
	assert.Equal(t, []Source{{File: "manifests/ok.yaml", Reason: "Pod/ok container c"}}, imgs["quay.io/ok/img:v3"].Sources)
	assert.Equal(t, []string{
		`manifests/dup.yaml:5: not valid YAML (mapping key "name" already defined at line 4): image: fields read line by line`,
		`manifests/helmish.yaml:6: not valid YAML (a key that is a mapping, as an unquoted {{ ... }} template reads): image: fields read line by line`,
		`manifests/helmish.yaml:6: image "{{ .Values.image }}" is an unrendered template: skipped`,
	}, warnings)
}

// Charts render as sealos renders them: release "dryrun", no namespace. A chart that
// refuses the "default" namespace renders.
func TestDetectChartReleaseLikeSealos(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"charts/guarded/Chart.yaml":  "apiVersion: v2\nname: guarded\nversion: 1.0.0\n",
		"charts/guarded/values.yaml": "image: quay.io/guarded/app:v1\n",
		"charts/guarded/templates/guard.yaml": `{{- if eq .Release.Namespace "default" }}{{ fail "install guarded in its own namespace" }}{{ end }}
`,
		"charts/guarded/templates/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-app
  namespace: {{ .Release.Namespace | quote }}
spec:
  template:
    spec:
      containers:
      - name: app
        image: {{ .Values.image }}
`,
	})
	imgs, warnings := detectAll(t, dir, Options{})
	assert.Empty(t, warnings)
	require.Contains(t, imgs, "quay.io/guarded/app:v1")
	assert.Equal(t, []Source{{File: "charts/guarded", Reason: "template guarded/templates/deploy.yaml: Deployment/dryrun-app container app"}}, imgs["quay.io/guarded/app:v1"].Sources)

	// Asking for the namespace the guard refuses fails, naming the chart.
	_, err := Detect(context.Background(), dir, Options{Namespace: "default"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "render chart charts/guarded")
	assert.Contains(t, err.Error(), "install guarded in its own namespace")
}

func TestDetectArchives(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"images/skopeo/tar.txt":      "# archives\ndocker-archive:app.tar@library/app:v1\n\noci-archive:oci/tool.tar@quay.io/tools/tool:v2\ndocker-archive:multi.tar:other/img:v3@other/img:v3\n",
		"images/skopeo/app.tar":      "x",
		"images/skopeo/oci/tool.tar": "x",
		"images/skopeo/multi.tar":    "x",
		"images/shim/list":           "docker.io/library/app:v1\n",
	})
	imgs, warnings := detectAll(t, dir, Options{})
	assert.Empty(t, warnings)
	assert.ElementsMatch(t, []string{"docker.io/library/app:v1", "quay.io/tools/tool:v2", "other/img:v3"}, refsOf(imgs))
	skopeo := filepath.Join(dir, "images/skopeo")
	app := imgs["docker.io/library/app:v1"]
	assert.Equal(t, &Archive{Transport: DockerArchive, Path: filepath.Join(skopeo, "app.tar")}, app.Archive, "the archive wins over the registry")
	assert.Equal(t, []Source{
		{File: "images/shim/list", Reason: "image list, line 1"},
		{File: ArchiveList, Reason: "docker-archive images/skopeo/app.tar, line 2"},
	}, app.Sources)
	assert.Equal(t, &Archive{Transport: OCIArchive, Path: filepath.Join(skopeo, "oci/tool.tar")}, imgs["quay.io/tools/tool:v2"].Archive)
	assert.Equal(t, &Archive{Transport: DockerArchive, Path: filepath.Join(skopeo, "multi.tar"), Ref: "other/img:v3"}, imgs["other/img:v3"].Archive)
}
