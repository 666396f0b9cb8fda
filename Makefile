# Build, test and benchmark sealos. Targets that need root (the embedded BuildKit with runc,
# test nodes in mount namespaces) say so; CI runs as root.
GO       ?= go
BIN      ?= bin/sealos
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
TESTFLAGS ?= -count=1 -timeout 45m

.PHONY: build deps test test-short vet fmt examples kube-binaries kube-image bench bench-build bench-registry bench-save bench-apply bench-sync clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sealos

# Everything the tests, examples and benchmarks need (apt packages as root, pinned Go tools).
deps:
	./hack/deps.sh

# The whole suite. CI runs exactly this (see .ci/run for what it installs first). The
# Kubernetes binaries are built (or found cached) first, so no test waits on that compile.
test: build kube-binaries
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	SEALOS_BIN=$(abspath $(BIN)) $(GO) test $(TESTFLAGS) ./...

test-short:
	$(GO) test -short ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# The main job end to end on the bundled examples: build each one into a throwaway store
# and show what was built.
examples: build
	./hack/examples.sh $(abspath $(BIN))

# The Kubernetes binaries of the rootfs image (kubeadm, kubelet, kubectl, the control plane,
# etcd, crictl), built from the Go module proxy and cached by version under
# /var/cache/sealos-kube (KUBE_CACHE); ~15-20 min the first time, then instant. Prints the
# directory (hack/kube/binaries.sh).
kube-binaries:
	./hack/kube/binaries.sh

# The Kubernetes rootfs cluster image sealos.hub/kubernetes:v1.34.4 (KUBE_VERSION) in the
# store (SEALOS_ROOT, default /var/lib/sealos): the binaries, control-plane images FROM
# scratch, examples/kubernetes. Cached: an unchanged second run takes seconds. Prints the
# image name last (hack/kube/image.sh; as root, needs make deps' packages).
kube-image: build
	./hack/kube/image.sh $(abspath $(BIN))

# The Kubernetes end-to-end tests alone (as root): 1+1 with an app, add/delete/reset, 3+1
# HA, hosts refused; each test host has its own network namespace (testdata/nodes.sh).
.PHONY: e2e-kube
e2e-kube: build kube-binaries
	SEALOS_BIN=$(abspath $(BIN)) $(GO) test -count=1 -timeout 40m -v -run 'TestKubernetes' ./cmd/sealos

# Every benchmark below, one after the other, into one markdown table (date, machine, disk,
# every figure with its peer, ratio and floor): .bench/results-DATE.md, also printed
# (hack/bench-all.sh; as root). BENCH_KUBE=1 adds bench-kube; BENCH_ONLY="save sync" runs
# some; RUNS=1 SIZE_MB=64 ... for a quick look (see the script's header for every knob).
bench: build $(if $(filter 1,$(BENCH_KUBE)),kube-binaries)
	./hack/bench-all.sh $(abspath $(BIN))

# Seconds from `sealos run` to every node Ready for 1+1 and 3+1 hosts, by step, the
# unchanged re-run, and a tar|ssh floor for the shipped bytes (hack/bench-kube.sh; as root).
.PHONY: bench-kube
bench-kube: build kube-binaries
	./hack/bench-kube.sh $(abspath $(BIN))

# Build one ~1 GB context (20,000 small files, 6 large) with `sealos build` and with
# `buildah bud --layers` (overlay), cold and unchanged, alternating, 3 runs; prints median
# seconds, the median of per-run ratios and a tar|zstd floor (hack/bench-build.sh; needs
# buildah, as root).
bench-build: build
	./hack/bench-build.sh $(abspath $(BIN))

# Push and pull 1 GiB in 4 layers and 64 x 1 MiB with sealos against the hub and with crane
# against the stock distribution registry, at sealos' default 8 blobs at once and at crane's
# 4; prints MB/s, ratios and dd floors (hack/bench-registry.sh).
bench-registry: build
	./hack/bench-registry.sh $(abspath $(BIN))

# Wall time and peak RSS of short commands (version, images, inspect, tag, an unchanged
# re-push), 20 runs each against crane and buildah, with a Go process that only starts as
# the floor (hack/bench-startup.sh; needs buildah).
.PHONY: bench-startup
bench-startup: build
	./hack/bench-startup.sh $(abspath $(BIN))

# The hub on S3 (versitygw) and Redis against the stock registry on the same bucket service
# and Redis, through 1 and 3 replicas behind one balancer, crane as the client of both:
# push and pull 1 GiB and 64 x 1 MiB, and a 16-client pull (hack/bench-hub-s3.sh).
.PHONY: bench-hub-s3
bench-hub-s3: build
	./hack/bench-hub-s3.sh $(abspath $(BIN))

# Save 10 images (~1 GB) from a local upstream hub with `sealos registry save` and with
# `skopeo sync` and `skopeo copy` 8 at once (to dir: and to a second hub), cold and with
# nothing changed; ratios and a cp + sha256sum floor (hack/bench-save.sh).
bench-save: build
	./hack/bench-save.sh $(abspath $(BIN))

# Sync 20 repositories (~1 GB) from a local source hub to an empty hub with `sealos registry
# sync` and with `skopeo sync` (per repository 8 at once, and in one yaml run), cold and with
# nothing changed; ratios, a floor, and checks digests (hack/bench-sync.sh; needs skopeo).
bench-sync: build
	./hack/bench-sync.sh $(abspath $(BIN))

# Load, save and list ~1 GiB with the local store (sealos load/save/images) and with
# buildah's containers-storage, overlay driver (pull/push oci-archive:, docker-archive:);
# prints seconds, ratios and floors (hack/bench-store.sh; needs buildah and skopeo, as root).
.PHONY: bench-store
bench-store: build
	./hack/bench-store.sh $(abspath $(BIN))

# Ship a ~1 GB rootfs (~26,000 small files, 6 x 100 MB) to three test nodes with `sealos
# run` and with `scp -r` to the three nodes at once, plus an unchanged re-run; prints
# seconds, the ratio and a tar|ssh floor (hack/bench-apply.sh; as root: the nodes are sshd
# in mount namespaces).
bench-apply: build
	./hack/bench-apply.sh $(abspath $(BIN))

clean:
	rm -rf bin .bench
