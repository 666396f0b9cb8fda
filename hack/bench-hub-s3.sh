#!/usr/bin/env bash
# bench-hub-s3: the hub on S3 against the stock registry (distribution v3.1.2) on the same
# S3 service (versitygw, posix backend, one bucket each) and the same Redis (one database
# each, blobdescriptor: redis), through 1 replica and through 3 replicas behind one TCP
# balancer (sealos kube-balancer, a connection to the next replica), in one run. The
# client is the same for both servers (crane, 4 blobs at once), so the figures compare
# the servers. Each hub replica keeps the blobs it serves in a local blob cache
# (--cache-dir, on the same disk as the bucket here; stock distribution has none): a pull
# fills it, the 16-client pull that follows reads from it.
#   push large / pull large    1 GiB in 4 layers (LARGE)
#   push small / pull small    64 x 1 MiB (SMALL)
#   16-client pull             16 clients GETting every small blob at once (curl), MB/s
# Before every timed command: sync and, as root, the page cache dropped; pulls write to a
# fresh directory; a sync at the end is inside the time; the two servers take turns at
# going first. RUNS runs (default 3), medians of per-run ratios stock/sealos (> 1: the hub
# is faster). Floor: the large layers written into the bucket's directory with dd (what
# the S3 service's disk allows).
#
# usage: hack/bench-hub-s3.sh SEALOS_BIN
# needs: versitygw, registry (distribution), crane (go install, see hack/deps.sh),
#        redis-server and curl (apt)
set -euo pipefail

SEALOS=$(readlink -f "${1:?usage: $0 SEALOS_BIN}")
HERE=$(cd "$(dirname "$0")/.." && pwd)
. "$HERE/hack/bench-lib.sh"
bench_need bench-hub-s3 versitygw registry crane redis-server curl
RUNS=${RUNS:-3}
bench_workdir bench-hub-s3

go build -o "$WORK/benchdata" "$HERE/hack/benchdata"
"$WORK/benchdata" -out "$WORK/layouts" -images "large=${LARGE:-4x256MiB},small=${SMALL:-64x1MiB}" >"$WORK/images.txt"

# the S3 service and Redis
mkdir -p "$WORK/gw/sealos" "$WORK/gw/stock"
S3_PORT=$(bench_free_port)
versitygw --access bench --secret bench-secret --port "127.0.0.1:$S3_PORT" posix "$WORK/gw" >"$WORK/gw.log" 2>&1 &
PIDS+=($!)
REDIS_PORT=$(bench_free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && break; sleep 0.1; done

# config BUCKET DB PORT: a distribution configuration for one server
config() {
	cat <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  s3: {bucket: $1, region: us-east-1, regionendpoint: "http://127.0.0.1:$S3_PORT", accesskey: bench, secretkey: bench-secret, forcepathstyle: true, secure: false}
  cache: {blobdescriptor: redis}
  delete: {enabled: true}
  redirect: {disable: true}
redis: {addrs: ["127.0.0.1:$REDIS_PORT"], db: $2}
http: {addr: "127.0.0.1:$3", secret: bench-upload-secret}
YAML
}

# servers KIND N: starts N replicas of KIND (sealos or stock) and a balancer in front of
# them; sets LB to the balancer's host:port
declare -A SERVER_PIDS
servers() {
	local kind=$1 n=$2 backends=() p
	for i in $(seq "$n"); do
		p=$(bench_free_port)
		if [ "$kind" = sealos ]; then
			config sealos 0 "$p" >"$WORK/$kind-$i.yml"
			rm -rf "$WORK/cache-$i"
			"$SEALOS" registry serve --config "$WORK/$kind-$i.yml" --cache-dir "$WORK/cache-$i" >"$WORK/$kind-$n-$i.log" 2>&1 &
		else
			config stock 1 "$p" >"$WORK/$kind-$i.yml"
			OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
				registry serve "$WORK/$kind-$i.yml" >"$WORK/$kind-$n-$i.log" 2>&1 &
		fi
		PIDS+=($!)
		SERVER_PIDS[$kind]="${SERVER_PIDS[$kind]:-} $!"
		bench_wait_up "127.0.0.1:$p"
		backends+=(--backend "127.0.0.1:$p")
	done
	p=$(bench_free_port)
	"$SEALOS" kube-balancer --listen "127.0.0.1:$p" "${backends[@]}" >"$WORK/lb-$kind-$n.log" 2>&1 &
	PIDS+=($!)
	SERVER_PIDS[$kind]="${SERVER_PIDS[$kind]} $!"
	bench_wait_up "127.0.0.1:$p"
	LB=127.0.0.1:$p
}
stop_servers() {
	for k in sealos stock; do
		# shellcheck disable=SC2086
		kill ${SERVER_PIDS[$k]:-} 2>/dev/null || true
		SERVER_PIDS[$k]=
	done
	sleep 1
}

# pull16 HOST REPO: 16 clients, each GETting every small blob once, all at once (a curl
# fetches 8 blobs, one -o each)
pull16() {
	local host=$1 repo=$2
	for _ in $(seq 16); do
		find "$WORK/layouts/small/blobs/sha256" -type f -size +100k -printf "http://$host/v2/$repo/blobs/sha256:%f\n"
	done | xargs -P 16 -n 8 curl -fsS -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null
}

timed() { # FILE CMD...: bench_timed with the output of a pull removed first
	rm -rf "$WORK/pulled"
	bench_timed "$@"
}

echo "bench-hub-s3: $RUNS runs; $(bench_cache_state)"
for r in $(seq "$RUNS"); do
	for n in 1 3; do
		echo "== run $r, $n replica(s)"
		# fresh buckets and Redis databases for every round
		stop_servers
		rm -rf "$WORK/gw/sealos" "$WORK/gw/stock"; mkdir -p "$WORK/gw/sealos" "$WORK/gw/stock"
		redis-cli -p "$REDIS_PORT" flushall >/dev/null
		servers sealos "$n"; S=$LB
		servers stock "$n"; D=$LB
		for img in large small; do
			hub() { timed "$WORK/sealos-$n-push-$img" crane push --insecure "$WORK/layouts/$img" "$S/bench/$img:v1"; }
			stock() { timed "$WORK/stock-$n-push-$img" crane push --insecure "$WORK/layouts/$img" "$D/bench/$img:v1"; }
			bench_order "$r" hub stock
		done
		for img in large small; do
			hub() { timed "$WORK/sealos-$n-pull-$img" crane pull --insecure --format oci "$S/bench/$img:v1" "$WORK/pulled"; }
			stock() { timed "$WORK/stock-$n-pull-$img" crane pull --insecure --format oci "$D/bench/$img:v1" "$WORK/pulled"; }
			bench_order "$r" hub stock
		done
		hub() { timed "$WORK/sealos-$n-pull16" pull16 "$S" bench/small; }
		stock() { timed "$WORK/stock-$n-pull16" pull16 "$D" bench/small; }
		bench_order "$r" hub stock
	done
	# the floor: the large layers written into the bucket's directory (in parallel, fsync)
	mkdir -p "$WORK/gw/floor"
	bench_timed "$WORK/floor-large" bash -c 'for f in "$@"; do dd if="$f" of="$0/$(basename "$f")" bs=1M conv=fsync status=none & done; wait' \
		"$WORK/gw/floor" $(find "$WORK/layouts/large/blobs" -type f -size +1M)
	rm -rf "$WORK/gw/floor"
done
stop_servers

size_of() { du -sb "$WORK/layouts/$1/blobs" | awk '{print $1}'; }
mbs() { awk -v b="$1" -v s="$(bench_med "$2")" 'BEGIN{ if (s > 0) printf "%.1f", b/s/1e6 }'; }
echo
echo "bench-hub-s3: times are medians; ratio = median of per-run stock/sealos (> 1: the hub is faster); client: crane for both"
bench_note bench-hub-s3 "peer: $(registry --version 2>/dev/null | head -1) on the same versitygw $(versitygw --version 2>/dev/null | head -1 | awk '{print $NF}') and redis-server; one TCP balancer (sealos kube-balancer) in front of 1 or 3 replicas of each; client crane $(crane version) for both"
for n in 1 3; do
	for op in push pull; do
		for img in large small; do
			fl=-
			[ "$img" != large ] || [ "$op" != push ] || fl=$WORK/floor-large
			b=$(size_of "$img")
			bench_result bench-hub-s3 "$op $img, $n replica(s)" "distribution" "$WORK/sealos-$n-$op-$img" "$WORK/stock-$n-$op-$img" "$fl" \
				"$b bytes; hub $(mbs "$b" "$WORK/sealos-$n-$op-$img") MB/s, stock $(mbs "$b" "$WORK/stock-$n-$op-$img") MB/s"
		done
	done
	b=$(( $(size_of small) * 16 ))
	bench_result bench-hub-s3 "16-client pull, $n replica(s)" "distribution" "$WORK/sealos-$n-pull16" "$WORK/stock-$n-pull16" - \
		"16 x every small blob; hub $(mbs "$b" "$WORK/sealos-$n-pull16") MB/s, stock $(mbs "$b" "$WORK/stock-$n-pull16") MB/s"
done
awk -v one="$(bench_med "$WORK/sealos-1-pull16")" -v three="$(bench_med "$WORK/sealos-3-pull16")" 'BEGIN{
	printf "16-client pull: 3 hub replicas give %.2fx one replica (on %d cores: replicas, versitygw, Redis and the clients share them)\n", one/three, '"$(nproc)"' }'
echo "(targets: at least the stock registry on every line, 1.5x on small-blob pulls; 3 replicas >= 1.5x one on the 16-client pull where the cores allow)"
