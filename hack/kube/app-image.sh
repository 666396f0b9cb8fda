#!/usr/bin/env bash
# app-image.sh BIN: builds the application cluster image the Kubernetes tests and
# bench-kube run on the cluster, and prints its name as the last line:
#
#   sealos-e2e/webapp:v1  a container image FROM scratch: testdata/webapp, a static web server
#   sealos-e2e/app:v1     an application cluster image: a Deployment (2 replicas) and a
#                         Service of that image in manifests/, the image itself in registry/,
#                         and CMD kubectl apply
#
# The container image reaches registry/ by a push into our hub serving that directory:
# the cluster pulls it as docker.io/sealos-e2e/webapp:v1, which no build machine here can
# pull from docker.io, so the build's own save (--save-image) is off.
# The store is the binary's (--root, SEALOS_ROOT).
set -euo pipefail
BIN=$(realpath "${1:?usage: app-image.sh path/to/sealos}")
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
hub=
cleanup() {
	[ -z "$hub" ] || kill "$hub" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/webapp" "$work/app/manifests" "$work/app/registry"
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/webapp/webapp" ./testdata/webapp
cat >"$work/webapp/Kubefile" <<'KF'
FROM scratch
COPY webapp /webapp
ENTRYPOINT ["/webapp"]
KF
"$BIN" build --progress plain --save-image=false -t sealos-e2e/webapp:v1 "$work/webapp" >&2

cat >"$work/app/manifests/webapp.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: webapp
  labels: {app: webapp}
spec:
  replicas: 2
  selector:
    matchLabels: {app: webapp}
  template:
    metadata:
      labels: {app: webapp}
    spec:
      containers:
      - name: webapp
        image: docker.io/sealos-e2e/webapp:v1
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata:
  name: webapp
spec:
  selector: {app: webapp}
  ports: [{port: 80, targetPort: 8080}]
YAML

# Our hub on the app's registry/ for as long as the push takes.
"$BIN" registry serve filesystem "$work/app/registry" -p 0 --address 127.0.0.1 2>"$work/hub.log" &
hub=$!
addr=
for _ in $(seq 1 100); do
	addr=$(sed -n 's|.* on http://\(127\.0\.0\.1:[0-9]*\).*|\1|p' "$work/hub.log" | head -1)
	[ -n "$addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || { cat "$work/hub.log" >&2; echo "app-image.sh: the hub did not start" >&2; exit 1; }
"$BIN" push -q sealos-e2e/webapp:v1 "$addr/sealos-e2e/webapp:v1" >&2
kill "$hub"
wait "$hub" 2>/dev/null || true
hub=

cat >"$work/app/Kubefile" <<'KF'
FROM scratch
LABEL sealos.io.type=application
COPY manifests manifests
COPY registry registry
CMD ["kubectl apply -f manifests/webapp.yaml"]
KF
"$BIN" build --progress plain --save-image=false -t sealos-e2e/app:v1 "$work/app" >&2
echo sealos-e2e/app:v1
