# Sourced by the load scripts: `stub_upstream DIR PORT` starts an nginx that answers 200
# "ok" to any path on 127.0.0.1:PORT (config and pid file in DIR) and sets $stub_pid.
stub_upstream() {
  cat >"$1/stub-$2.conf" <<CONF
worker_processes 1; daemon off; pid $1/stub-$2.pid; error_log $1/stub-$2.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$2; location / { default_type text/plain; return 200 "ok\n"; } } }
CONF
  nginx -c "$1/stub-$2.conf" &
  stub_pid=$!
}
