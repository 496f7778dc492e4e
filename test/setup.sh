#!/usr/bin/env bash
# Installs what the tests need from Debian when it is missing (as root), or fails saying what to
# install. Safe to run again: it only looks when everything is present.
set -euo pipefail
missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need_file() { [ -e "$1" ] || missing+=("$2"); }
need_cmd iscsi-test-cu libiscsi-bin
need_cmd iscsi-inq libiscsi-bin
need_file /usr/include/iscsi/iscsi.h libiscsi-dev
need_cmd qemu-img qemu-utils
need_cmd qemu-io qemu-utils
need_file /usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so qemu-block-extra
need_cmd etcd etcd-server
need_cmd tgtd tgt
need_cmd gcc gcc
need_file /usr/include/isa-l/erasure_code.h libisal-dev
need_cmd losetup mount
need_cmd curl curl
need_cmd unzip unzip
need_cmd strace strace
need_cmd runuser util-linux
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" != 0 ]; then
    echo "The tests need these Debian packages: $pkgs" >&2
    echo "Install them with: sudo apt-get install -y $pkgs" >&2
    exit 1
  fi
  echo "test setup: installing $pkgs" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq $pkgs >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq $pkgs >/dev/null; }
fi
# iscsi-load (../shared/tools) is built once per checkout.
mkdir -p test/.cache
src=""
for d in ../shared/tools "$(dirname "$0")/../../shared/tools"; do [ -f "$d/iscsi-load.c" ] && src="$d/iscsi-load.c" && break; done
if [ -n "$src" ] && { [ ! -x test/.cache/iscsi-load ] || [ "$src" -nt test/.cache/iscsi-load ]; }; then
  gcc -O2 -o test/.cache/iscsi-load "$src" -liscsi
fi
