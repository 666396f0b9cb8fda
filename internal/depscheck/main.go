//go:build tools

// Package depscheck pins the module graph until every dependency is imported by real code.
package main

import (
	_ "github.com/moby/buildkit/client"
	_ "github.com/moby/buildkit/client/llb"
	_ "github.com/moby/buildkit/control"
	_ "github.com/moby/buildkit/worker/runc"
	_ "github.com/moby/buildkit/frontend/dockerfile/parser"
	_ "github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "helm.sh/helm/v4/pkg/action"
	_ "github.com/spf13/cobra"
	_ "golang.org/x/crypto/ssh"
	_ "github.com/stretchr/testify/require"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {}
