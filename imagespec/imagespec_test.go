package imagespec

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		labels map[string]string
		err    string
	}{
		{"no labels is an application", nil, ""},
		{"application", map[string]string{LabelType: "application"}, ""},
		{"rootfs with version", map[string]string{LabelType: "rootfs", LabelVersion: "v1beta1"}, ""},
		{"rootfs v1beta2", map[string]string{LabelType: "rootfs", LabelVersion: "v1beta2"}, ""},
		{"rootfs with the older version label", map[string]string{LabelTypeV2: "rootfs", LabelVersionV2: "v1beta1"}, ""},
		{"patch", map[string]string{LabelType: "patch"}, ""},
		{"unknown type", map[string]string{LabelType: "addons"}, ""},
		{"unknown version on an application", map[string]string{LabelVersion: "v2"}, ""},
		{"rootfs without version", map[string]string{LabelType: "rootfs"}, "a rootfs image needs the label sealos.io.version=v1beta1 (or v1beta2)"},
		{"older rootfs label without version", map[string]string{LabelTypeV2: "rootfs"}, "a rootfs image needs the label sealos.io.version=v1beta1"},
		{"rootfs with unknown version", map[string]string{LabelType: "rootfs", LabelVersion: "v9"}, `unsupported sealos.io.version "v9" on a rootfs image: want one of v1beta1, v1beta2`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.labels)
			if c.err == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.err)
			assert.True(t, errors.Is(err, ErrInvalid))
		})
	}
}

func TestTypeOf(t *testing.T) {
	cases := []struct {
		labels map[string]string
		want   Type
	}{
		{nil, Application},
		{map[string]string{LabelType: ""}, Application},
		{map[string]string{LabelType: "rootfs"}, Rootfs},
		{map[string]string{LabelType: "patch"}, Patch},
		{map[string]string{LabelTypeV2: "rootfs"}, Rootfs},
		{map[string]string{LabelTypeV2: "patch"}, Patch},
		{map[string]string{LabelType: "application", LabelTypeV2: "rootfs"}, Application},
		{map[string]string{LabelType: "addons"}, Application},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, TypeOf(c.labels), "%v", c.labels)
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name   string
		labels map[string]string
		want   []Warning // nil: no warning
	}{
		{"no labels", nil, nil},
		{"rootfs with version", map[string]string{LabelType: "rootfs", LabelVersion: "v1beta1"}, nil},
		{"older labels", map[string]string{LabelTypeV2: "rootfs", LabelVersionV2: "v1beta2"}, nil},
		{"empty type", map[string]string{LabelType: ""}, nil},
		{"rootfs without version", map[string]string{LabelType: "rootfs"}, []Warning{{LabelType,
			"a rootfs image needs the label sealos.io.version=v1beta1 (or v1beta2); 'sealos run' refuses such an image"}}},
		{"addons", map[string]string{LabelType: "addons"}, []Warning{{LabelType,
			`sealos.io.type "addons" is not one of rootfs, application, patch: the image is run as an application (on the first master only)`}}},
		{"addons in the older label", map[string]string{LabelTypeV2: "addons"}, []Warning{{LabelTypeV2,
			`apps.sealos.io/type "addons" is not one of rootfs, application, patch: the image is run as an application (on the first master only)`}}},
		{"labels disagree", map[string]string{LabelType: "patch", LabelTypeV2: "rootfs"}, []Warning{{LabelTypeV2,
			`sealos.io.type="patch" and apps.sealos.io/type="rootfs" disagree: sealos.io.type wins`}}},
		{"unknown version on an application", map[string]string{LabelVersion: "v2"}, []Warning{{LabelVersion,
			`sealos.io.version "v2" is not one of v1beta1, v1beta2 (it is read only on rootfs images)`}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, Check(c.labels))
		})
	}
}

func TestEnvWithDefaults(t *testing.T) {
	env := EnvWithDefaults(Rootfs, []string{"registryPort=5001", "A=b"})
	m := EnvMap(env)
	assert.Equal(t, "5001", m[EnvRegistryPort], "the Kubefile's value wins")
	assert.Equal(t, "sealos.hub", m[EnvRegistryDomain])
	assert.Equal(t, "/var/lib/registry", m[EnvRegistryData])
	assert.Equal(t, []string{"A=b"}, EnvWithDefaults(Application, []string{"A=b"}))
}

func TestScriptCommand(t *testing.T) {
	cmd, def := ScriptCommand(map[string]string{LabelInit: "bash init.sh $registryDomain"}, LabelInit)
	assert.Equal(t, "bash init.sh $registryDomain", cmd)
	assert.False(t, def)
	cmd, def = ScriptCommand(nil, LabelCheck)
	assert.Equal(t, "bash check.sh", cmd)
	assert.True(t, def)
}
