package kubefile

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const stagedKubefile = `ARG NS=default
ARG BASE=registry.example.com/base:v1
FROM ${BASE} AS base
ARG NS
ENV NAMESPACE=$NS VERSION=v1
FROM scratch AS tools
ENV TOOLS=yes
FROM base
COPY --from=tools / /
ARG REPLICAS=2
ENV REPLICAS=${REPLICAS} IMAGE=repo/app:${VERSION}
FROM base AS other
`

func TestStaticEnv(t *testing.T) {
	f, err := Parse("Kubefile", strings.NewReader(stagedKubefile))
	require.NoError(t, err)
	env, err := f.StaticEnv("2", map[string]string{"NS": "apps"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"NAMESPACE": "apps", "VERSION": "v1", "REPLICAS": "2", "IMAGE": "repo/app:v1"}, env,
		"ENV of the stage and of the stages it is FROM, ARGs from --build-arg or defaults")
	env, err = f.StaticEnv("", nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"NAMESPACE": "default", "VERSION": "v1"}, env, "the last stage by default")
	_, err = f.StaticEnv("nosuch", nil)
	assert.ErrorContains(t, err, "target stage")
}

func TestBaseImages(t *testing.T) {
	f, err := Parse("Kubefile", strings.NewReader(stagedKubefile))
	require.NoError(t, err)
	bases, err := f.BaseImages(nil, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"registry.example.com/base:v1"}, bases, "scratch and stage names left out, each image once")
	bases, err = f.BaseImages(map[string]string{"BASE": "other/img:v2"}, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"other/img:v2"}, bases)
}
