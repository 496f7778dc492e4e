#!/bin/sh
# qstora installer (POSIX sh):  curl -fsSL URL/install.sh | sh      help: sh -s -- --help
#
# Downloads the release zip for this machine's CPU, checks its sha256 against sha256sums.txt and
# installs the qstora executable atomically: as root into /usr/local/bin with a systemd unit (not
# started unless asked), otherwise into ~/.local/bin. It writes qstora-uninstall.sh beside the
# executable. Running it again with the installed version changes nothing; a new version replaces
# the executable. It never touches data directories except on --uninstall --purge, and never
# leaves its temporary directory behind.
set -eu

usage() {
  cat <<'EOF'
qstora installer

  curl -fsSL URL/install.sh | [VARIABLE=value ...] sh [-s -- FLAGS]

Settings (environment variable, or the flag after `sh -s --`):
  QSTORA_VERSION=V        --version V        version to install (default: the newest listed)
  QSTORA_BASE_URL=URL     --base-url URL     where the release zips and sha256sums.txt are
  QSTORA_INSTALL_DIR=DIR  --install-dir DIR  where qstora goes (root: /usr/local/bin,
                                             others: ~/.local/bin)
  QSTORA_SKIP_SERVICE=true --skip-service    no systemd unit (root only)
  QSTORA_SKIP_START=false  --start           enable and start the unit (default: not started)
                           --skip-start      do not start it (the default)
  --uninstall [--purge]   remove what this script installed; --purge also removes the data
                          directory ($QSTORA_DATA_DIR, /var/lib/qstora or ~/.qstora)
  -h, --help              this text
EOF
}

VERSION=${QSTORA_VERSION:-}
BASE_URL=${QSTORA_BASE_URL:-https://github.com/qstora/qstora/releases/latest/download}
INSTALL_DIR=${QSTORA_INSTALL_DIR:-}
SKIP_SERVICE=${QSTORA_SKIP_SERVICE:-false}
SKIP_START=${QSTORA_SKIP_START:-true}
UNINSTALL=false
PURGE=false

# Network waits: give up on a server that does not answer, or that stalls mid-download.
CONNECT_TIMEOUT_SECONDS=30
STALL_SECONDS=60
STALL_BYTES_PER_SECOND=1024
RETRIES=2

say() { printf '%s\n' "$*"; }
fail() { printf 'qstora install: %s\n' "$*" >&2; exit 1; }
# Quotes a value for a generated sh script.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

while [ $# -gt 0 ]; do
  case $1 in
    --version) [ $# -ge 2 ] || fail "--version needs a value"; VERSION=$2; shift ;;
    --version=*) VERSION=${1#*=} ;;
    --base-url) [ $# -ge 2 ] || fail "--base-url needs a value"; BASE_URL=$2; shift ;;
    --base-url=*) BASE_URL=${1#*=} ;;
    --install-dir) [ $# -ge 2 ] || fail "--install-dir needs a value"; INSTALL_DIR=$2; shift ;;
    --install-dir=*) INSTALL_DIR=${1#*=} ;;
    --skip-service) SKIP_SERVICE=true ;;
    --start) SKIP_START=false ;;
    --skip-start) SKIP_START=true ;;
    --uninstall) UNINSTALL=true ;;
    --purge) PURGE=true ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
  shift
done
case $SKIP_SERVICE in true|false) ;; *) fail "QSTORA_SKIP_SERVICE must be true or false, not $SKIP_SERVICE" ;; esac
case $SKIP_START in true|false) ;; *) fail "QSTORA_SKIP_START must be true or false, not $SKIP_START" ;; esac
VERSION=${VERSION#v}
case $VERSION in *[!0-9A-Za-z.+-]*) fail "QSTORA_VERSION looks wrong: $VERSION (expected something like 0.1.0)" ;; esac
BASE_URL=${BASE_URL%/}

IS_ROOT=false
[ "$(id -u)" = 0 ] && IS_ROOT=true
if [ -z "$INSTALL_DIR" ]; then
  if $IS_ROOT; then INSTALL_DIR=/usr/local/bin; else INSTALL_DIR=${HOME:?HOME is not set}/.local/bin; fi
fi
case $INSTALL_DIR in /*) ;; *) fail "QSTORA_INSTALL_DIR must be an absolute path, not $INSTALL_DIR" ;; esac
BIN=$INSTALL_DIR/qstora
UNINSTALLER=$INSTALL_DIR/qstora-uninstall.sh
UNIT=/etc/systemd/system/qstora.service
DEFAULTS=/etc/default/qstora
HAS_SYSTEMD=false
[ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && HAS_SYSTEMD=true
if [ -n "${QSTORA_DATA_DIR:-}" ]; then DATA_DIR=$QSTORA_DATA_DIR
elif $IS_ROOT; then DATA_DIR=/var/lib/qstora
else DATA_DIR=$HOME/.qstora; fi

if $UNINSTALL; then
  if [ -f "$UNINSTALLER" ]; then
    if $PURGE; then exec sh "$UNINSTALLER" --purge; else exec sh "$UNINSTALLER"; fi
  fi
  [ -e "$BIN" ] || fail "qstora is not installed in $INSTALL_DIR (set QSTORA_INSTALL_DIR to where it is)"
  # An install that lost its uninstaller: remove the executable, and the data only if asked.
  QSTORA_DATA_DIR=$DATA_DIR "$BIN" stop >/dev/null 2>&1 || true
  rm -f "$BIN"
  if $PURGE; then rm -rf -- "$DATA_DIR"; say "removed $BIN and $DATA_DIR"; else say "removed $BIN; data in $DATA_DIR was kept"; fi
  exit 0
fi

case $(uname -s) in Linux) ;; *) fail "qstora runs on Linux only; this is $(uname -s)" ;; esac
case $(uname -m) in
  x86_64|amd64)
    # The x64 build needs AVX2 (Bun's default x64 target); older CPUs get the baseline build.
    if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then ARCH=x64; else ARCH=x64-baseline; fi ;;
  aarch64|arm64) ARCH=arm64 ;;
  *) fail "there is no qstora build for $(uname -m); builds exist for x86_64 and aarch64 Linux" ;;
esac

if command -v curl >/dev/null 2>&1; then
  download() {
    curl -fsSL --connect-timeout "$CONNECT_TIMEOUT_SECONDS" --speed-time "$STALL_SECONDS" \
      --speed-limit "$STALL_BYTES_PER_SECOND" --retry "$RETRIES" -o "$2" "$1"
  }
elif command -v wget >/dev/null 2>&1; then
  download() { wget -q --timeout="$STALL_SECONDS" --tries=$((RETRIES + 1)) -O "$2" "$1"; }
else
  fail "needs curl or wget to download qstora; install one of them"
fi
if command -v sha256sum >/dev/null 2>&1; then sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else fail "needs sha256sum (coreutils) or shasum to check the download"; fi

TMP=$(mktemp -d 2>/dev/null || mktemp -d -t qstora.XXXXXX) || fail "cannot create a temporary directory"
NEW=$INSTALL_DIR/.qstora.new.$$
cleanup() { rm -rf "$TMP"; rm -f "$NEW" "$UNINSTALLER.new.$$" "$UNIT.new.$$"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

download "$BASE_URL/sha256sums.txt" "$TMP/sha256sums.txt" || fail "cannot download $BASE_URL/sha256sums.txt (check QSTORA_BASE_URL)"
# The versions listed for this CPU, as "version zip" lines.
awk -v arch="$ARCH" '
  length($1) == 64 && $1 ~ /^[0-9a-f]+$/ && $2 ~ ("^qstora-.+-linux-" arch "\\.zip$") {
    v = $2; sub(/^qstora-/, "", v); sub("-linux-" arch "\\.zip$", "", v); print v, $2
  }' "$TMP/sha256sums.txt" > "$TMP/listed"
if [ -z "$VERSION" ]; then
  VERSION=$(cut -d' ' -f1 "$TMP/listed" | sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1)
  [ -n "$VERSION" ] || fail "$BASE_URL/sha256sums.txt lists no qstora build for linux-$ARCH"
fi
ZIP=qstora-$VERSION-linux-$ARCH.zip
awk -v v="$VERSION" '$1 == v { found = 1 } END { exit !found }' "$TMP/listed" || fail "$BASE_URL has no $ZIP (see sha256sums.txt there for the versions it has)"
WANT=$(awk -v z="$ZIP" '$2 == z { print $1; exit }' "$TMP/sha256sums.txt")

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "^qstora $VERSION "; then
  say "qstora $VERSION is already installed in $INSTALL_DIR; nothing to do."
  exit 0
fi
UPGRADE_FROM=
if [ -x "$BIN" ]; then UPGRADE_FROM=$("$BIN" --version 2>/dev/null | cut -d' ' -f2 || true); UPGRADE_FROM=${UPGRADE_FROM:-unknown}; fi

say "downloading $ZIP from $BASE_URL"
download "$BASE_URL/$ZIP" "$TMP/$ZIP" || fail "cannot download $BASE_URL/$ZIP"
GOT=$(sha256 "$TMP/$ZIP")
[ "$GOT" = "$WANT" ] || fail "checksum mismatch for $ZIP: expected $WANT, got $GOT. Nothing was installed; download again, or check QSTORA_BASE_URL."

mkdir -p "$TMP/x"
if command -v unzip >/dev/null 2>&1; then unzip -q "$TMP/$ZIP" -d "$TMP/x"
elif command -v busybox >/dev/null 2>&1; then (cd "$TMP/x" && busybox unzip -q "$TMP/$ZIP")
elif command -v python3 >/dev/null 2>&1; then python3 -m zipfile -e "$TMP/$ZIP" "$TMP/x"
elif command -v bsdtar >/dev/null 2>&1; then bsdtar -xf "$TMP/$ZIP" -C "$TMP/x"
else fail "needs unzip (or busybox, python3 or bsdtar) to unpack $ZIP; install unzip"; fi \
  || fail "cannot unpack $ZIP"
SRC=$TMP/x/qstora-$VERSION-linux-$ARCH
[ -f "$SRC/qstora" ] || fail "$ZIP does not hold qstora-$VERSION-linux-$ARCH/qstora"
chmod 0755 "$SRC/qstora"
"$SRC/qstora" --version >/dev/null 2>&1 || fail "the downloaded qstora does not run on this machine ($(uname -m)); nothing was installed"

# The executable: copied beside its final place, then renamed over it, so that a running daemon
# keeps its old file and no one ever sees half a binary.
mkdir -p "$INSTALL_DIR"
cp "$SRC/qstora" "$NEW"
chmod 0755 "$NEW"
mv -f "$NEW" "$BIN"

UNIT_INSTALLED=
DEFAULTS_CREATED=
if $IS_ROOT && [ "$SKIP_SERVICE" = false ] && $HAS_SYSTEMD; then
  # The template names /usr/local/bin/qstora; point it at where qstora went.
  sed "s#/usr/local/bin/qstora#$BIN#" "$SRC/qstora.service" > "$UNIT.new.$$"
  chmod 0644 "$UNIT.new.$$"
  mv -f "$UNIT.new.$$" "$UNIT"
  UNIT_INSTALLED=$UNIT
  if [ ! -f "$DEFAULTS" ]; then
    mkdir -p "$(dirname "$DEFAULTS")"
    # 0600: the file may come to hold secrets (etcd credentials, tokens).
    (umask 077 && printf '# Environment of the qstora service (systemd EnvironmentFile).\nQSTORA_DATA_DIR=%s\n' "$DATA_DIR" > "$DEFAULTS")
    chmod 0600 "$DEFAULTS"
    DEFAULTS_CREATED=$DEFAULTS
  elif grep -q "^# qstora-uninstall.sh: remove $DEFAULTS" "$UNINSTALLER" 2>/dev/null; then
    DEFAULTS_CREATED=$DEFAULTS
  fi
  systemctl daemon-reload
fi

# The uninstaller removes exactly what this script put in place.
{
  say '#!/bin/sh'
  say "# Removes qstora $VERSION as installed by install.sh. Data stays unless --purge."
  [ -n "$DEFAULTS_CREATED" ] && say "# qstora-uninstall.sh: remove $DEFAULTS_CREATED"
  say 'set -eu'
  say "BIN=$(quote "$BIN")"
  say "UNIT=$(quote "$UNIT_INSTALLED")"
  say "DEFAULTS=$(quote "$DEFAULTS_CREATED")"
  say "DATA_DIR=\${QSTORA_DATA_DIR:-$(quote "$DATA_DIR")}"
  cat <<'EOF'
PURGE=false
for a in "$@"; do
  case $a in
    --purge) PURGE=true ;;
    -h|--help) echo "usage: $0 [--purge]   (--purge also removes $DATA_DIR)"; exit 0 ;;
    *) echo "qstora-uninstall.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
if [ -n "$UNIT" ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now qstora >/dev/null 2>&1 || true
fi
if [ -x "$BIN" ]; then QSTORA_DATA_DIR=$DATA_DIR "$BIN" stop >/dev/null 2>&1 || true; fi
if [ -n "$UNIT" ]; then
  rm -f "$UNIT"
  if command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
fi
[ -z "$DEFAULTS" ] || rm -f "$DEFAULTS"
rm -f "$BIN"
if $PURGE; then
  case $DATA_DIR in ''|/|"${HOME:-/}"|"${HOME:-/}/") echo "qstora-uninstall.sh: refusing to purge $DATA_DIR" >&2; exit 1 ;; esac
  rm -rf -- "$DATA_DIR"
  echo "removed qstora and its data directory $DATA_DIR"
else
  echo "removed qstora; its data directory $DATA_DIR was kept (run with --purge to remove it)"
fi
rm -f "$0"
EOF
} > "$UNINSTALLER.new.$$"
chmod 0755 "$UNINSTALLER.new.$$"
mv -f "$UNINSTALLER.new.$$" "$UNINSTALLER"

if [ -n "$UNIT_INSTALLED" ] && [ "$SKIP_START" = false ]; then
  systemctl enable qstora >/dev/null 2>&1 || fail "systemctl enable qstora failed"
  systemctl restart qstora || fail "systemctl restart qstora failed; see journalctl -u qstora"
  say "started the qstora service"
fi

if [ -n "$UPGRADE_FROM" ]; then
  say "qstora $UPGRADE_FROM replaced by $VERSION in $INSTALL_DIR."
  if [ -n "$UNIT_INSTALLED" ] && systemctl is-active --quiet qstora 2>/dev/null; then
    [ "$SKIP_START" = false ] || say "Restart the service to use it: systemctl restart qstora"
  else
    say "A running daemon keeps the old version until restarted: qstora restart"
  fi
  exit 0
fi

say "qstora $VERSION installed in $INSTALL_DIR"
[ -z "$UNIT_INSTALLED" ] || say "systemd unit: $UNIT_INSTALLED (settings in $DEFAULTS); not started"
case ":$PATH:" in
  *":$INSTALL_DIR:"*) Q=qstora ;;
  *) Q=$BIN; say "note: $INSTALL_DIR is not on your PATH; add it with: export PATH=\"$INSTALL_DIR:\$PATH\"" ;;
esac
# Ports below ip_unprivileged_port_start (1024 by default) need root: a normal user's portal
# takes a high port.
PORTAL=
if ! $IS_ROOT; then
  start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null || echo 1024)
  [ "$start" -le 3260 ] 2>/dev/null || PORTAL=" --portal 127.0.0.1:13260"
fi
say ""
say "Next steps:"
say "  $Q init --archive $DATA_DIR/archive-1.img:20G$PORTAL"
say "  $Q target create iqn.2026-01.com.example:disk1"
say "  $Q lun create --target iqn.2026-01.com.example:disk1 --size 10G"
say "  $Q status"
[ -z "$UNIT_INSTALLED" ] || say "  # then let systemd run it: $Q stop && systemctl enable --now qstora"
say "Uninstall: $UNINSTALLER [--purge]"
