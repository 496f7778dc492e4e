#!/bin/sh
# qstora installer: curl -fsSL URL/install.sh | sh   (or: sh -s -- --help)
#
# Downloads the release zip for this machine, checks its sha256 against sha256sums.txt, and
# installs the qstora executable: as root to /usr/local/bin with a systemd unit (not started
# unless asked), otherwise to ~/.local/bin. Running it again with the same version changes
# nothing. Settings come from environment variables or the same flags after `sh -s --`:
#
#   QSTORA_VERSION       --version V        version to install (default: the newest listed)
#   QSTORA_BASE_URL      --base-url URL     where the zips and sha256sums.txt are
#   QSTORA_INSTALL_DIR   --install-dir DIR  where the executable goes
#   QSTORA_SKIP_SERVICE  --skip-service     do not install the systemd unit (root only)
#   QSTORA_SKIP_START    --start            the unit is not started unless QSTORA_SKIP_START=false
#                        --uninstall        remove what this script installed (data stays)
#                        --purge            with --uninstall: also remove the data directory
#                        --help
set -eu

VERSION=${QSTORA_VERSION:-}
BASE_URL=${QSTORA_BASE_URL:-https://github.com/qstora/qstora/releases/latest/download}
INSTALL_DIR=${QSTORA_INSTALL_DIR:-}
SKIP_SERVICE=${QSTORA_SKIP_SERVICE:-false}
SKIP_START=${QSTORA_SKIP_START:-true}
UNINSTALL=false
PURGE=false

say() { printf '%s\n' "$*"; }
fail() { printf 'qstora install: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,18p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//' || true; }

while [ $# -gt 0 ]; do
  case $1 in
    --version) VERSION=${2:?--version needs a value}; shift ;;
    --version=*) VERSION=${1#*=} ;;
    --base-url) BASE_URL=${2:?--base-url needs a value}; shift ;;
    --base-url=*) BASE_URL=${1#*=} ;;
    --install-dir) INSTALL_DIR=${2:?--install-dir needs a value}; shift ;;
    --install-dir=*) INSTALL_DIR=${1#*=} ;;
    --skip-service) SKIP_SERVICE=true ;;
    --start) SKIP_START=false ;;
    --uninstall) UNINSTALL=true ;;
    --purge) PURGE=true ;;
    -h|--help)
      say "qstora installer. Usage: curl -fsSL URL/install.sh | [VAR=value ...] sh [-s -- FLAGS]"
      say "  QSTORA_VERSION / --version V        version to install (default: newest in sha256sums.txt)"
      say "  QSTORA_BASE_URL / --base-url URL    where the release zips and sha256sums.txt are"
      say "  QSTORA_INSTALL_DIR / --install-dir  install directory (root: /usr/local/bin, else ~/.local/bin)"
      say "  QSTORA_SKIP_SERVICE / --skip-service  no systemd unit (root only)"
      say "  QSTORA_SKIP_START=false / --start   start the unit after installing (default: not started)"
      say "  --uninstall [--purge]               remove qstora (--purge: its data directory too)"
      exit 0 ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
  shift
done

is_root=false
[ "$(id -u)" = 0 ] && is_root=true
if [ -z "$INSTALL_DIR" ]; then
  if $is_root; then INSTALL_DIR=/usr/local/bin; else INSTALL_DIR=${HOME:?HOME is not set}/.local/bin; fi
fi
BIN=$INSTALL_DIR/qstora
UNIT=/etc/systemd/system/qstora.service
DEFAULTS=/etc/default/qstora
has_systemd=false
[ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && has_systemd=true

data_dir() {
  if [ -n "${QSTORA_DATA_DIR:-}" ]; then say "$QSTORA_DATA_DIR"; elif $is_root; then say /var/lib/qstora; else say "$HOME/.qstora"; fi
}

if $UNINSTALL; then
  [ -e "$BIN" ] || [ -e "$INSTALL_DIR/qstora-uninstall.sh" ] || fail "qstora is not installed in $INSTALL_DIR"
  if [ -x "$BIN" ]; then "$BIN" stop >/dev/null 2>&1 || true; fi
  if $is_root && [ -f "$UNIT" ]; then
    if $has_systemd; then systemctl disable --now qstora >/dev/null 2>&1 || true; fi
    rm -f "$UNIT"
    if $has_systemd; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
    rm -f "$DEFAULTS"
  fi
  rm -f "$BIN" "$INSTALL_DIR/qstora-uninstall.sh" "$INSTALL_DIR/.qstora-install.sh"
  if $PURGE; then
    d=$(data_dir)
    rm -rf "$d"
    say "removed qstora and its data directory $d"
  else
    say "removed qstora; its data directory $(data_dir) was left in place (use --purge to remove it)"
  fi
  exit 0
fi

case $(uname -s) in Linux) ;; *) fail "qstora runs on Linux only (this is $(uname -s))" ;; esac
case $(uname -m) in
  x86_64|amd64)
    if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then ARCH=x64; else ARCH=x64-baseline; fi ;;
  aarch64|arm64) ARCH=arm64 ;;
  *) fail "no qstora build for the $(uname -m) architecture (there are x86_64 and aarch64 builds)" ;;
esac

if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q -O "$2" "$1"; }
else
  fail "needs curl or wget to download"
fi

TMP=$(mktemp -d 2>/dev/null || mktemp -d -t qstora)
trap 'rm -rf "$TMP"' EXIT INT TERM

fetch "$BASE_URL/sha256sums.txt" "$TMP/sha256sums.txt" || fail "cannot download $BASE_URL/sha256sums.txt"
if [ -n "$VERSION" ]; then
  VERSION=${VERSION#v}
  ZIP=qstora-$VERSION-linux-$ARCH.zip
  grep -q "  $ZIP\$" "$TMP/sha256sums.txt" || fail "$BASE_URL has no $ZIP"
else
  ZIP=$(sed -n "s/^[0-9a-f]\{64\}  \(qstora-.*-linux-$ARCH\.zip\)\$/\1/p" "$TMP/sha256sums.txt" | sort -t- -k2,2V | tail -n 1)
  [ -n "$ZIP" ] || fail "$BASE_URL lists no build for linux-$ARCH"
  VERSION=${ZIP#qstora-}
  VERSION=${VERSION%-linux-$ARCH.zip}
fi
WANT=$(grep "  $ZIP\$" "$TMP/sha256sums.txt" | cut -d' ' -f1)

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "^qstora $VERSION "; then
  say "qstora $VERSION is already installed in $INSTALL_DIR; nothing to do."
  exit 0
fi
UPGRADE=false
[ -x "$BIN" ] && UPGRADE=true

say "downloading $ZIP"
fetch "$BASE_URL/$ZIP" "$TMP/$ZIP" || fail "cannot download $BASE_URL/$ZIP"
if command -v sha256sum >/dev/null 2>&1; then GOT=$(sha256sum "$TMP/$ZIP" | cut -d' ' -f1)
else GOT=$(shasum -a 256 "$TMP/$ZIP" | cut -d' ' -f1); fi
[ "$GOT" = "$WANT" ] || fail "checksum mismatch for $ZIP (expected $WANT, got $GOT): nothing was installed"

if command -v unzip >/dev/null 2>&1; then unzip -q "$TMP/$ZIP" -d "$TMP/x"
elif command -v busybox >/dev/null 2>&1; then mkdir -p "$TMP/x" && busybox unzip -q "$TMP/$ZIP" -d "$TMP/x"
elif command -v python3 >/dev/null 2>&1; then python3 -m zipfile -e "$TMP/$ZIP" "$TMP/x"
else fail "needs unzip (or busybox or python3) to unpack $ZIP"; fi
SRC=$TMP/x/qstora-$VERSION-linux-$ARCH
[ -f "$SRC/qstora" ] || fail "$ZIP does not hold qstora-$VERSION-linux-$ARCH/qstora"

mkdir -p "$INSTALL_DIR"
cp "$SRC/qstora" "$INSTALL_DIR/.qstora.new.$$"
chmod 0755 "$INSTALL_DIR/.qstora.new.$$"
mv -f "$INSTALL_DIR/.qstora.new.$$" "$BIN"

# The uninstaller: this script, run with --uninstall and the same install dir.
{
  say '#!/bin/sh'
  say "# Removes qstora installed in $INSTALL_DIR. Data directories stay unless --purge."
  say "QSTORA_INSTALL_DIR='$INSTALL_DIR' exec sh '$INSTALL_DIR/.qstora-install.sh' --uninstall \"\$@\""
} > "$INSTALL_DIR/qstora-uninstall.sh"
chmod 0755 "$INSTALL_DIR/qstora-uninstall.sh"
if [ -f "$0" ] && [ "$0" != "sh" ]; then cp "$0" "$INSTALL_DIR/.qstora-install.sh" 2>/dev/null || true; fi
if [ ! -f "$INSTALL_DIR/.qstora-install.sh" ]; then fetch "$BASE_URL/install.sh" "$INSTALL_DIR/.qstora-install.sh" || true; fi

if $is_root && ! [ "$SKIP_SERVICE" = true ] && $has_systemd; then
  sed "s#/usr/local/bin/qstora#$BIN#" "$SRC/qstora.service" > "$UNIT"
  if [ ! -f "$DEFAULTS" ]; then
    umask 077
    printf '# Environment of the qstora service (see qstora --help).\nQSTORA_DATA_DIR=/var/lib/qstora\n' > "$DEFAULTS"
    chmod 0600 "$DEFAULTS"
  fi
  systemctl daemon-reload
  systemctl enable qstora >/dev/null 2>&1 || true
  if [ "$SKIP_START" = false ]; then systemctl restart qstora; say "started the qstora service"; fi
fi

if $UPGRADE; then
  say "qstora upgraded to $VERSION in $INSTALL_DIR. Restart it to use the new version: qstora restart"
else
  say "qstora $VERSION installed in $INSTALL_DIR"
fi
case ":$PATH:" in *":$INSTALL_DIR:"*) ;; *) say "note: $INSTALL_DIR is not on your PATH; add it: export PATH=\"$INSTALL_DIR:\$PATH\"" ;; esac
say ""
say "Next steps:"
say "  qstora init --archive $( $is_root && say /var/lib/qstora/archive-1.img || say "$HOME/.qstora/archive-1.img" ):20G"
say "  qstora target create iqn.2026-11.com.example:disk1"
say "  qstora lun create --target iqn.2026-11.com.example:disk1 --size 10G"
say "  qstora status"
say "Uninstall: $INSTALL_DIR/qstora-uninstall.sh [--purge]"
