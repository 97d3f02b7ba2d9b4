#!/usr/bin/env bash
# Installs what `make bench` needs beyond `make setup`, idempotently:
#   - Debian packages nginx-light and wrk, when missing (apt-get update first);
#   - a venv under .cache/bench/venv with uWSGI, Flask and Granian from PyPI,
#     built with the same python3 hop3's Python buildpack uses.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${HOP3_BENCH_VENV:-$here/.cache/bench/venv}
uwsgi_version=2.0.31
flask_version=3.1.3
granian_version=$(sed -n 's/^const DefaultGranianVersion = "\(.*\)"/\1/p' "$here/buildpacks/buildpacks.go")

say() { echo "-----> $*"; }

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  # The package starts a system nginx on :80; the benchmarks run their own.
  if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now nginx >/dev/null 2>&1 || true; fi
  [ -f /run/nginx.pid ] && $sudo kill "$(cat /run/nginx.pid)" 2>/dev/null || true
fi

if [ ! -x "$venv/bin/python" ]; then
  say "creating bench venv in $venv"
  python3 -m venv "$venv"
fi
want="uwsgi==$uwsgi_version flask==$flask_version granian==$granian_version"
have=$("$venv/bin/pip" freeze 2>/dev/null | tr 'A-Z' 'a-z' | grep -E '^(uwsgi|flask|granian)==' | sort | tr '\n' ' ' || true)
if [ "$have" != "flask==$flask_version granian==$granian_version uwsgi==$uwsgi_version " ]; then
  say "installing $want"
  "$venv/bin/pip" install -q --disable-pip-version-check $want
fi
say "bench tools ready: $(command -v wrk), $(command -v nginx || echo /usr/sbin/nginx), $venv"
