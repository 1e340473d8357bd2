#!/usr/bin/env bash
# Installs what the `hwloc` feature links against (Debian/Ubuntu): the system hwloc library
# with its headers, libudev (hwloc's dependency) and pkg-config. Does nothing if present.
set -euo pipefail
if pkg-config --exists hwloc 2>/dev/null; then
  echo "hwloc $(pkg-config --modversion hwloc) is installed"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install the hwloc development files (libhwloc-dev or hwloc-devel) and pkg-config" >&2
  exit 1
fi
sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq libhwloc-dev libudev-dev pkg-config
echo "hwloc $(pkg-config --modversion hwloc) installed"
