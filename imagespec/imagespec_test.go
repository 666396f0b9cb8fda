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
		{"patch", map[string]string{LabelType: "patch"}, ""},
		{"rootfs without version", map[string]string{LabelType: "rootfs"}, "needs the label sealos.io.version=v1beta1"},
		{"unknown type", map[string]string{LabelType: "rootfz"}, `unknown sealos.io.type "rootfz": want one of rootfs, application, patch`},
		{"unknown version", map[string]string{LabelVersion: "v2"}, `unsupported sealos.io.version "v2"`},
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
