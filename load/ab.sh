#!/usr/bin/env bash
# A/B: the same wrk load against two keygate configs in alternation, in one run, to see
# what a feature costs. Usage: load/ab.sh "log: { access: true }" "log: { access: false }" [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH" KEYGATE_PEPPER=bench-pepper-0123456789abcdef
d=$(mktemp -d); rounds=${3:-3}; secs=${4:-5}
cat >"$d/up.conf" <<CONF
worker_processes 1; daemon off; pid $d/up.pid; error_log $d/up.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:9940; location / { default_type text/plain; return 200 "ok\n"; } } }
CONF
nginx -c "$d/up.conf" & pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$d"' EXIT
for v in A B; do
  extra=$([ $v = A ] && echo "$1" || echo "$2"); port=$([ $v = A ] && echo 9941 || echo 9943)
  printf 'listen: { host: 127.0.0.1, port: %s }\nadmin: { host: 127.0.0.1, port: %s }\nstore: { path: %s/%s.db }\nroutes:\n  - { name: a, pathPrefix: /, upstream: "http://127.0.0.1:9940" }\n%s\n' "$port" $((port+1)) "$d" "$v" "$extra" >"$d/$v.yaml"
  node bin/keygate.js serve --config "$d/$v.yaml" >"$d/$v.log" 2>&1 & pids+=($!)
done
sleep 1.5
ka=$(node bin/keygate.js keys create --config "$d/A.yaml" --tenant t --name b --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).key))')
kb=$(node bin/keygate.js keys create --config "$d/B.yaml" --tenant t --name b --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).key))')
for r in $(seq "$rounds"); do
  a=$(wrk -t1 -c64 -d"${secs}s" -H "X-Api-Key: $ka" http://127.0.0.1:9941/ | awk '/Requests\/sec/{print $2}')
  b=$(wrk -t1 -c64 -d"${secs}s" -H "X-Api-Key: $kb" http://127.0.0.1:9943/ | awk '/Requests\/sec/{print $2}')
  awk -v a="$a" -v b="$b" -v r="$r" 'BEGIN{printf "round %s  A %.0f rps  B %.0f rps  B/A %.3f\n", r, a, b, b/a}'
done
