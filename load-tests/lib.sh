# Shared by compare.sh, compress-bench.sh and origin-bench.sh: sourced (not run) from the
# workspace root as `. load-tests/lib.sh NAME`.
# Builds the release binaries ($EDGE, $LOAD), makes a work dir ($work) removed on exit
# (KEEP=1 keeps it), kills every PID the script adds to `pids` on exit, and defines
# wait_addr, free_port, rss_kib, tree_rss, tree_cpu, start_nginx, edge_config, disk_cache and
# start_caddy.
bench_name=$1

# PREBUILT=DIR uses DIR/edge and DIR/edge-load as they are (an A/B of a fixed build).
if [ -n "${PREBUILT:-}" ]; then
  EDGE=$PREBUILT/edge LOAD=$PREBUILT/edge-load
else
  echo "== building release binaries" >&2
  cargo build --release --locked -q -p edge -p load-tests
  EDGE=$PWD/target/release/edge LOAD=$PWD/target/release/edge-load
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/edge-$bench_name.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "$bench_name: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Waits for a line matching PATTERN ("listening ADDR", "listening http ADDR") in FILE; prints
# its last field, the address.
wait_addr() {
  local file=$1 pattern=$2
  for _ in $(seq 100); do
    local a; a=$(awk -v p="$pattern" '$0 ~ p {print $NF; exit}' "$file" 2>/dev/null)
    [ -n "$a" ] && { echo "$a"; return; }
    sleep 0.1
  done
  echo "$bench_name: no address in $file" >&2; cat "$file" >&2; exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# The RSS (KiB) of a process and its children (nginx's and Varnish's workers).
tree_rss() { local t=0 q; for q in $1 $(pgrep -P "$1" || true); do t=$((t + $(rss_kib "$q"))); done; echo $t; }
# CPU seconds (user + system) a process and its children have used so far.
tree_cpu() {
  local hz q t=0; hz=$(getconf CLK_TCK)
  for q in $1 $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$q/stat" 2>/dev/null || echo 0)))
  done
  python3 -c "print($t / $hz)"
}

# Starts nginx with proxy_cache in front of ORIGIN on CPU 0, one worker, plain HTTP on
# $NGX_HTTP and TLS + HTTP/2 on $NGX_HTTPS (both set here). EXTRA_HTTP and EXTRA_LOCATION are
# added to the http and location blocks (e.g. gzip settings).
start_nginx() { # ORIGIN [EXTRA_HTTP] [EXTRA_LOCATION]
  local origin=$1 extra_http=${2:-} extra_location=${3:-}
  NGX_HTTP=$(free_port) NGX_HTTPS=$(free_port)
  mkdir -p "$work/nginx/cache" "$work/nginx/tmp"
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
user $(id -un);
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 65536; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  keepalive_requests 1000000;
  proxy_cache_path $work/nginx/cache levels=1:2 keys_zone=c:64m max_size=2g inactive=1h use_temp_path=off;
  upstream origin { server $origin; keepalive 64; }
  $extra_http
  server {
    listen 127.0.0.1:$NGX_HTTP;
    listen 127.0.0.1:$NGX_HTTPS ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache c;
      proxy_cache_lock on;
      $extra_location
    }
  }
}
NGINX
  taskset -c 0 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" & pids+=($!)
  sleep 0.5
}

# Writes a benchmark edge's config to FILE: node NAME, HTTPS and plain HTTP on free ports, the
# certificate `edge-load cert` wrote beside it, [cache] from CACHE (TOML lines), one site
# proxying everything to ORIGIN. EXTRA_FILE (TOML) is appended after the site.
edge_config() { # FILE NAME ORIGIN CACHE [EXTRA_FILE]
  cat > "$1" <<EOF
[node]
name = "$2"
[listen]
https = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
[tls]
cert = "cert.pem"
key = "key.pem"
[cache]
$4
[limits]
max_connections_per_client = 0
[pools.origin]
endpoints = ["$3"]
[[sites]]
name = "bench"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "origin" }]
EOF
  [ -z "${5:-}" ] || cat "$5" >> "$1"
}

# [cache] lines that put every object on the disk tier (in DIR, relative to the config).
disk_cache() { # DIR
  printf 'memory_bytes = "1MiB"\nmax_object_memory_bytes = 256\ndisk_dir = "%s"\ndisk_bytes = "4GiB"' "$1"
}

# Starts Caddy's file_server (HTTP/1.1, HTTP/2, HTTP/3) over DIR on CPU 0 with the benchmark
# certificate; sets CADDY_PORT and CADDY_PID and waits until PROBE (a path under DIR) answers.
start_caddy() { # DIR PROBE
  CADDY_PORT=$(free_port)
  cat > "$work/Caddyfile" <<EOF
{
  admin off
  auto_https off
  servers {
    protocols h1 h2 h3
  }
}
https://localhost:$CADDY_PORT {
  tls $work/cert.pem $work/key.pem
  root * $1
  file_server
}
EOF
  HOME=$work GOMAXPROCS=1 taskset -c 0 caddy run --config "$work/Caddyfile" --adapter caddyfile \
    > "$work/caddy.log" 2>&1 & pids+=($!); CADDY_PID=$!
  for _ in $(seq 50); do curl -sk -o /dev/null "https://localhost:$CADDY_PORT$2" && break; sleep 0.2; done
}
