#!/usr/bin/env bash
# Runs ../shared/bench/anchor.sh against keygate: keygate (embedded or Redis store) in front
# of the anchor's stub upstream, compared in one run with direct access and with nginx doing
# the same key check. Usage: load/anchor.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#   KEYGATE_BENCH_STORE=redis KEYGATE_REDIS_URL=redis://127.0.0.1:6379 load/anchor.sh
#   KEYGATE_BENCH_ACCESS_LOG=false load/anchor.sh     # access log off
#   KEYGATE_BENCH_WORKERS=auto load/anchor.sh         # one worker per core
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
anchor=${ANCHOR_SCRIPT:-../shared/bench/anchor.sh}
dir=$(mktemp -d)
port=${KEYGATE_BENCH_PORT:-9910}
cat >"$dir/keygate.yaml" <<YAML
listen: { host: 127.0.0.1, port: $port }
admin: { host: 127.0.0.1, port: $((port + 1)) }
store: { kind: ${KEYGATE_BENCH_STORE:-embedded}, path: $dir/keygate.db }
log: { level: info, access: ${KEYGATE_BENCH_ACCESS_LOG:-true} }
workers: ${KEYGATE_BENCH_WORKERS:-1}
routes:
  - name: anchor
    pathPrefix: /
    upstream: http://127.0.0.1:${ANCHOR_UPSTREAM_PORT:-9901}
YAML
export KEYGATE_PEPPER=${KEYGATE_PEPPER:-bench-pepper-0123456789abcdef}
node bin/keygate.js serve --config "$dir/keygate.yaml" >"$dir/keygate.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -s "http://127.0.0.1:$((port + 1))/healthz" >/dev/null && break; sleep 0.1; done
key=$(node bin/keygate.js keys create --config "$dir/keygate.yaml" --tenant anchor --name bench --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).key))')
# JIT warm-up of every worker, against a stand-in for anchor.sh's upstream (it starts its
# own only once called): nginx needs none, and the first round would otherwise measure
# keygate's compiler as much as keygate.
. load/stub-upstream.sh
stub_upstream "$dir" "${ANCHOR_UPSTREAM_PORT:-9901}"; warm=$stub_pid
sleep 0.5
wrk -t1 -c64 -d4s -H "X-Api-Key: $key" "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
kill $warm; wait $warm 2>/dev/null || true
echo "keygate $(node --version) on $(nproc) cores, store ${KEYGATE_BENCH_STORE:-embedded}, access log ${KEYGATE_BENCH_ACCESS_LOG:-true}, workers ${KEYGATE_BENCH_WORKERS:-1}"
bash "$anchor" "http://127.0.0.1:$port/" "$key" "${1:-3}" "${2:-8}" "${3:-64}"
