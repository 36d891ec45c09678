#!/usr/bin/env bash
# Puts NVIDIA's PTX assembler and SASS disassembler (ptxas, cuobjdump, nvdisasm from CUDA 11.8) in a user cache,
# taken from Debian's non-free nvidia-cuda-toolkit package without installing it, and prints their folder.
#   usage: tools/get-ptxas.sh [DEST]     DEST defaults to ${XDG_CACHE_HOME:-~/.cache}/tensorlite/cuda-11.8
# Nothing on the system changes: apt runs against a private source list, package lists and cache in a temporary
# folder (no root needed), and only the .deb's files are unpacked into DEST. Needs a Debian-family apt, the Debian
# archive keyring and access to the Debian mirror the system already uses; ~85 MB download, about a minute.
# ptxas 11.8 accepts PTX ISA up to 7.8 and targets up to sm_90.
set -euo pipefail
dest=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/tensorlite/cuda-11.8}
if [ -x "$dest/usr/bin/ptxas" ] && [ -x "$dest/usr/bin/cuobjdump" ]; then echo "$dest/usr/bin"; exit 0; fi
command -v apt-get >/dev/null || { echo "get-ptxas.sh: apt-get is needed (Debian or Ubuntu)" >&2; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "get-ptxas.sh: $keyring is missing (package debian-archive-keyring)" >&2; exit 1; }
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || { echo "get-ptxas.sh: no VERSION_CODENAME in /etc/os-release" >&2; exit 1; }
# The system's own Debian mirror (deb822 or one-line format), else the public one.
mirror=$(grep -hsm1 '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | head -1 || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=$keyring] $mirror $codename non-free" > "$work/sources.list"
apt_private=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/none"
             -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "Debug::NoLocking=1"
             -o "APT::Sandbox::User=$(id -un)")
apt-get "${apt_private[@]}" -qq update >/dev/null
( cd "$work" && apt-get "${apt_private[@]}" -qq download nvidia-cuda-toolkit >/dev/null )
mkdir -p "$dest"
dpkg-deb -x "$work"/nvidia-cuda-toolkit_*.deb "$dest"
"$dest/usr/bin/ptxas" --version >/dev/null
echo "$dest/usr/bin"
