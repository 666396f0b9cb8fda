package plan_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cluster-image/sealos/apply/applytest"
	"github.com/cluster-image/sealos/apply/clusterfile"
	"github.com/cluster-image/sealos/apply/plan"
	"github.com/cluster-image/sealos/apply/tree"
	"github.com/cluster-image/sealos/imagespec"
	"github.com/cluster-image/sealos/store"
)

func read(t *testing.T, tr *tree.Tree, p string) string {
	t.Helper()
	rc, err := tr.Open(p)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}

func TestBuild(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := store.Open(root)
	require.NoError(t, err)

	rootfs := applytest.Image(applytest.Config{
		Labels: applytest.Rootfs(), Env: []string{"A=image", "B=image", "C=image", "D=image"}, Cmd: []string{"bash init.sh"},
	},
		applytest.Layer(map[string]string{"bin/kubelet": "v1", "etc/": "", "etc/gone": "x", "etc/conf.tmpl": "{{.A}} {{.B}} {{.C}} {{.D}} {{.registryDomain}}"}),
		applytest.Layer(map[string]string{"bin/kubeadm": "v1", "scripts/init.sh": "echo init"}),
	)
	patch := applytest.Image(applytest.Config{Labels: map[string]string{"sealos.io.type": "patch"}},
		applytest.Layer(map[string]string{"bin/kubelet": "v2", "etc/.wh.gone": ""}))
	app := applytest.Image(applytest.Config{Env: []string{"APP=1"}, Cmd: []string{"kubectl apply -f manifests"}},
		applytest.Layer(map[string]string{"manifests/app.yaml.tmpl": "app={{.APP}} a={{.A}}"}))
	require.NoError(t, st.WriteImage(ctx, "test/rootfs:v1", rootfs))
	require.NoError(t, st.WriteImage(ctx, "test/patch:v1", patch))
	require.NoError(t, st.WriteImage(ctx, "test/app:v1", app))

	c := clusterfile.New("default")
	c.Spec.Hosts = []clusterfile.Host{
		{IPS: []string{"10.0.0.1"}, Roles: []string{"master"}, Env: []string{"D=host"}},
		{IPS: []string{"10.0.0.2"}, Roles: []string{"node"}},
	}
	c.Spec.Image = []string{"test/rootfs:v1", "test/patch:v1", "test/app:v1"}
	c.Spec.Env = []string{"B=cluster", "C=cluster"}
	work := filepath.Join(root, "work")
	p, err := plan.Build(ctx, plan.Options{Cluster: c, Env: []string{"C=flag"}, Source: plan.StoreSource(st, nil), WorkDir: work})
	require.NoError(t, err)

	require.Len(t, p.Images, 3)
	assert.Equal(t, imagespec.Rootfs, p.Images[0].Type)
	assert.Equal(t, imagespec.Patch, p.Images[1].Type)
	assert.Equal(t, imagespec.Application, p.Images[2].Type)
	assert.Equal(t, []string{"10.0.0.1"}, p.Registry)

	m := p.Rootfs["10.0.0.1"].Manifest().Map()
	assert.Contains(t, m, "bin/kubeadm")
	assert.NotContains(t, m, "etc/gone", "the patch's whiteout removes a file of the rootfs image")
	assert.Equal(t, "v2", read(t, p.Rootfs["10.0.0.1"], "bin/kubelet"), "the patch overrides")
	assert.Equal(t, "image cluster flag host sealos.hub", read(t, p.Rootfs["10.0.0.1"], "etc/conf"), "image < cluster < -e < host")
	assert.Equal(t, "image cluster flag image sealos.hub", read(t, p.Rootfs["10.0.0.2"], "etc/conf"))

	require.Len(t, p.Apps, 1)
	assert.Equal(t, "app=1 a=image", read(t, p.Apps[0].Tree, "manifests/app.yaml"))
	assert.Equal(t, []string{"kubectl apply -f manifests"}, p.Apps[0].Image.Commands())

	// A second build reuses the unpacked trees and gives the same manifests.
	p2, err := plan.Build(ctx, plan.Options{Cluster: c, Env: []string{"C=flag"}, Source: plan.StoreSource(st, nil), WorkDir: work})
	require.NoError(t, err)
	assert.Equal(t, p.Rootfs["10.0.0.2"].Manifest().Digest(), p2.Rootfs["10.0.0.2"].Manifest().Digest())
	ents, _ := os.ReadDir(work)
	assert.Len(t, ents, 4, "two trees and their manifests")
}

func TestBuildErrors(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := store.Open(root)
	require.NoError(t, err)
	bad := applytest.Image(applytest.Config{Labels: map[string]string{"sealos.io.type": "rootfs"}}, applytest.Layer(map[string]string{"a": "b"}))
	require.NoError(t, st.WriteImage(ctx, "test/bad:v1", bad))
	c := clusterfile.New("default")
	c.Spec.Hosts = []clusterfile.Host{{IPS: []string{"10.0.0.1"}, Roles: []string{"master"}}}

	c.Spec.Image = []string{"test/missing:v1"}
	_, err = plan.Build(ctx, plan.Options{Cluster: c, Source: plan.StoreSource(st, nil), WorkDir: t.TempDir()})
	assert.ErrorContains(t, err, "test/missing:v1")

	// As sealos run, a rootfs image without a format version is refused, saying why.
	c.Spec.Image = []string{"test/bad:v1"}
	_, err = plan.Build(ctx, plan.Options{Cluster: c, Source: plan.StoreSource(st, nil), WorkDir: t.TempDir()})
	assert.ErrorIs(t, err, imagespec.ErrInvalid)
	assert.EqualError(t, err, "plan: image test/bad:v1: invalid cluster image: a rootfs image needs the label sealos.io.version=v1beta1 (or v1beta2)")
}

// The labels sealos accepts are accepted: the older apps.sealos.io/type and /version keys
// say rootfs, and a type sealos does not know ("addons") runs as an application, with a
// warning on the plan's image.
func TestBuildLabels(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(t.TempDir())
	require.NoError(t, err)
	old := applytest.Image(applytest.Config{Labels: map[string]string{"apps.sealos.io/type": "rootfs", "apps.sealos.io/version": "v1beta2"}},
		applytest.Layer(map[string]string{"bin/kubeadm": "v1"}))
	addons := applytest.Image(applytest.Config{Labels: map[string]string{"sealos.io.type": "addons"}, Cmd: []string{"true"}},
		applytest.Layer(map[string]string{"manifests/a.yaml": "x"}))
	require.NoError(t, st.WriteImage(ctx, "test/old:v1", old))
	require.NoError(t, st.WriteImage(ctx, "test/addons:v1", addons))
	c := clusterfile.New("default")
	c.Spec.Hosts = []clusterfile.Host{{IPS: []string{"10.0.0.1"}, Roles: []string{"master"}}}
	c.Spec.Image = []string{"test/old:v1", "test/addons:v1"}
	p, err := plan.Build(ctx, plan.Options{Cluster: c, Source: plan.StoreSource(st, nil), WorkDir: t.TempDir()})
	require.NoError(t, err)
	require.Len(t, p.Images, 2)
	assert.Equal(t, imagespec.Rootfs, p.Images[0].Type, "apps.sealos.io/type is read as the type")
	assert.Empty(t, p.Images[0].Warnings)
	assert.Contains(t, p.Rootfs["10.0.0.1"].Manifest().Map(), "bin/kubeadm", "the old-label rootfs goes to every host")
	assert.Equal(t, "sealos.hub", p.Env["registryDomain"], "it gets the rootfs env defaults")
	assert.Equal(t, imagespec.Application, p.Images[1].Type)
	require.Len(t, p.Apps, 1)
	assert.Equal(t, "test/addons:v1", p.Apps[0].Image.Ref)
	assert.Equal(t, []string{`image test/addons:v1: sealos.io.type "addons" is not one of rootfs, application, patch: the image is run as an application (on the first master only)`}, p.Images[1].Warnings)
}
