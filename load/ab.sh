#!/usr/bin/env bash
# A/B: the same wrk load against two keygate configs in alternation, in one run, to see
# what a feature costs. Usage: load/ab.sh "log: { access: true }" "log: { access: false }" [ROUNDS] [SECONDS]
# A_REPO / B_REPO (default: this checkout) run A or B from another checkout of keygate, to
# compare two versions of the code: B_REPO=../perf load/ab.sh "" "" 5 5
# A_ROUTE / B_ROUTE add fields to the one route's mapping, e.g. B_ROUTE=', signedIdentity: {}'.
# A_NODE_OPTIONS / B_NODE_OPTIONS give one side Node or V8 flags:
# B_NODE_OPTIONS=--max-semi-space-size=32 load/ab.sh "" "" 8 4
# KEY_FLAGS adds flags to the `keys create` of both sides' keys (e.g. --permissions mcp:tools);
# WRK_SCRIPT runs wrk with a Lua script (e.g. load/mcp-call.lua: small MCP tools/call POSTs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH" KEYGATE_PEPPER=bench-pepper-0123456789abcdef
d=$(mktemp -d); rounds=${3:-3}; secs=${4:-5}
. load/stub-upstream.sh
stub_upstream "$d" 9940; pids=("$stub_pid")
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$d"' EXIT
for v in A B; do
  extra=$([ $v = A ] && echo "$1" || echo "$2"); port=$([ $v = A ] && echo 9941 || echo 9943)
  route=$([ $v = A ] && echo "${A_ROUTE:-}" || echo "${B_ROUTE:-}")
  printf 'listen: { host: 127.0.0.1, port: %s }\nadmin: { host: 127.0.0.1, port: %s }\nstore: { path: %s/%s.db }\nroutes:\n  - { name: a, pathPrefix: /, upstream: "http://127.0.0.1:9940"%s }\n%s\n' "$port" $((port+1)) "$d" "$v" "$route" "$extra" >"$d/$v.yaml"
  repo=$([ $v = A ] && echo "${A_REPO:-.}" || echo "${B_REPO:-.}")
  opts=$([ $v = A ] && echo "${A_NODE_OPTIONS:-}" || echo "${B_NODE_OPTIONS:-}")
  NODE_OPTIONS="$opts" node "$repo/bin/keygate.js" serve --config "$d/$v.yaml" >"$d/$v.log" 2>&1 & pids+=($!)
done
sleep 1.5
ka=$(node bin/keygate.js keys create --config "$d/A.yaml" --tenant t --name b ${KEY_FLAGS:-} --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).key))')
kb=$(node bin/keygate.js keys create --config "$d/B.yaml" --tenant t --name b ${KEY_FLAGS:-} --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).key))')
# CPU time per request (user + system, from /proc) is steadier than rps on a shared
# machine: it does not depend on how the scheduler placed wrk, nginx and keygate.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
one() { # port key pid → "rps µs-cpu-per-request"
  local before after out
  before=$(cpu "$3")
  out=$(wrk -t1 -c64 -d"${secs}s" ${WRK_SCRIPT:+-s "$WRK_SCRIPT"} -H "X-Api-Key: $2" "http://127.0.0.1:$1/")
  after=$(cpu "$3")
  awk -v b="$before" -v a="$after" -v t="$tck" '/requests in/{n=$1} /Requests\/sec/{r=$2} END{printf "%s %.1f\n", r, (a-b)/t*1e6/n}' <<<"$out"
}
# A warm-up run each (JIT), then rounds in alternating order so neither always goes first.
secs_run=$secs; secs=2; one 9941 "$ka" "${pids[1]}" >/dev/null; one 9943 "$kb" "${pids[2]}" >/dev/null; secs=$secs_run
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then
    read -r a acpu < <(one 9941 "$ka" "${pids[1]}"); read -r b bcpu < <(one 9943 "$kb" "${pids[2]}")
  else
    read -r b bcpu < <(one 9943 "$kb" "${pids[2]}"); read -r a acpu < <(one 9941 "$ka" "${pids[1]}")
  fi
  awk -v a="$a" -v b="$b" -v ac="$acpu" -v bc="$bcpu" -v r="$r" 'BEGIN{printf "round %s  A %.0f rps %.1f µs/req  B %.0f rps %.1f µs/req  B/A rps %.3f  cpu %.3f\n", r, a, ac, b, bc, b/a, bc/ac}' | tee -a "$d/rounds"
done
awk '{rps[NR]=$(NF-2); cpu[NR]=$NF} END{n=asort(rps); asort(cpu); m=int((n+1)/2); printf "median of %d rounds: B/A rps %.3f, cpu per request %.3f\n", n, rps[m], cpu[m]}' "$d/rounds"
