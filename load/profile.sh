#!/usr/bin/env bash
# CPU profile of keygate under wrk load: prints where the request path spends its time.
#   load/profile.sh [SECONDS] [ACCESS_LOG true|false]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH" KEYGATE_PEPPER=bench-pepper-0123456789abcdef
d=$(mktemp -d); secs=${1:-6}
cat >"$d/k.yaml" <<YAML
listen: { host: 127.0.0.1, port: 9920 }
admin: { host: 127.0.0.1, port: 9921 }
store: { path: $d/keygate.db }
log: { access: ${2:-true} }
routes:
  - { name: a, pathPrefix: /, upstream: "http://127.0.0.1:9930" }
YAML
. load/stub-upstream.sh
stub_upstream "$d" 9930; ng=$stub_pid
key=$(node bin/keygate.js keys create --config "$d/k.yaml" --tenant anchor --name b --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).key))')
node --cpu-prof --cpu-prof-dir="$d" bin/keygate.js serve --config "$d/k.yaml" >"$d/log" 2>&1 & kp=$!
trap 'kill $ng $kp 2>/dev/null || true; rm -rf "$d"' EXIT
sleep 1.5
wrk -t1 -c64 -d"${secs}s" -H "X-Api-Key: $key" http://127.0.0.1:9920/ | grep -E "Requests/sec|Latency"
kill -INT $kp; wait $kp || true
node load/profile-summary.ts "$d"/*.cpuprofile
