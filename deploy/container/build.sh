#!/usr/bin/env bash
# Build modelmedic's container image without a Docker engine or a registry (LOCAL_STACK.md):
#   1. a Debian bookworm root filesystem from Debian's packages (debootstrap, cached),
#   2. a base image from it (buildah from scratch + copy + commit, cached), and the build stage's base:
#      that one with Debian's binutils, for strip (cached),
#   3. a wheelhouse (modelmedic's wheel from this checkout, its dependencies at .venv's versions) in the
#      context's .wheelhouse/, then the standard multi-stage Containerfile with BASE and BUILD_BASE set
#      to those bases (buildah bud, offline: the Containerfile installs from a wheelhouse when it finds
#      one, and finds strip in its build base),
#   4. a smoke test: `modelmedic --help` inside the image (buildah run),
#   5. an OCI archive in dist/ to load into a cluster's nodes or push from a machine that has a registry.
#
#   deploy/container/build.sh [--tag TAG] [--no-archive] [--no-smoke]
#
# Needs root and the Debian packages buildah and debootstrap (installed when missing).
# Storage: vfs under buildah's default root; the rootfs cache lives in ~/.cache/modelmedic/image.
set -euo pipefail
cd "$(dirname "$0")/../.."
t0=$(date +%s)
say() { echo "[modelmedic image] $* ($(( $(date +%s) - t0 ))s)" >&2; }
die() { echo "[modelmedic image] error: $*" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
tag="localhost/modelmedic:${version}"
archive=1 smoke=1
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --no-archive) archive=0; shift ;;
    --no-smoke) smoke=0; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run as root: debootstrap and buildah's chroot isolation need it"
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot

cache="${MODELMEDIC_CACHE:-$HOME/.cache/modelmedic}/image"
rootfs="$cache/rootfs-bookworm"
base=localhost/modelmedic-base:bookworm
mkdir -p "$cache"

if [ ! -f "$rootfs/.complete" ]; then
  say "debootstrap: a minimal bookworm with python3 and python3-venv into $rootfs (about 45 s, once)"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" http://deb.debian.org/debian \
    > "$cache/debootstrap.log" 2>&1 || die "debootstrap failed; see $cache/debootstrap.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  touch "$rootfs/.complete"
fi
if [ ! -f "$rootfs/.trimmed" ]; then
  # Documentation, manual pages and message translations: nothing in the image reads them
  # (LANG=C.UTF-8), and they are 53 of the rootfs' 183 MB (Debian's slim images leave out
  # doc, man and info the same way). locale.alias stays: glibc reads it.
  find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
  touch "$rootfs/.trimmed" "$rootfs/.complete"
fi
say "root filesystem ready ($(du -sh --exclude=proc "$rootfs" 2>/dev/null | cut -f1))"

if ! buildah inspect --type image "$base" >/dev/null 2>&1 || [ "$rootfs/.complete" -nt "$cache/base.stamp" ]; then
  say "committing the base image $base"
  ctr=$(buildah from scratch)
  buildah copy --quiet "$ctr" "$rootfs" / >/dev/null
  buildah config --env LANG=C.UTF-8 "$ctr"
  buildah commit --quiet "$ctr" "$base" >/dev/null
  buildah rm "$ctr" >/dev/null
  touch "$cache/base.stamp"
fi
build_base=localhost/modelmedic-build-base:bookworm
if ! buildah inspect --type image "$build_base" >/dev/null 2>&1 || [ "$cache/base.stamp" -nt "$cache/build-base.stamp" ]; then
  say "committing the build stage's base $build_base: $base with binutils (strip) from Debian"
  ctr=$(buildah from "$base")
  buildah run --isolation chroot "$ctr" -- sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends binutils >/dev/null && rm -rf /var/lib/apt/lists/*' \
    || { buildah rm "$ctr" >/dev/null; die "installing binutils into $build_base failed"; }
  buildah commit --quiet "$ctr" "$build_base" >/dev/null
  buildah rm "$ctr" >/dev/null
  touch "$cache/build-base.stamp"
fi
say "base images $base and $build_base ready"

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/src/.wheelhouse"
# The modelmedic wheel holds the record decoder compiled from native/ (Rust), for bookworm's glibc.
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || die "Rust's cargo is needed to build modelmedic's wheel (native/): install it with https://rustup.rs"
python=$PWD/.venv/bin/python
[ -x "$python" ] || python=python3
say "building the wheelhouse: modelmedic from the checkout's tracked files, its dependencies from PyPI at .venv's versions"
# A copy, so the build leaves nothing (build/, egg-info) in the working tree.
git ls-files -z | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -xf - -C "$context/src"
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' \
  || die "$python is not Python 3.11 (the image's): wheels of compiled dependencies would not match"
# The dependency versions the project's tests ran with (.venv), not whatever PyPI has today.
"$python" -m pip freeze --exclude-editable 2>/dev/null | grep -v ' @ ' > "$context/constraints.txt" || true
"$python" -m pip wheel --quiet --wheel-dir "$context/src/.wheelhouse" -c "$context/constraints.txt" "$context/src" > "$context/wheel.log" 2>&1 \
  || { tail -20 "$context/wheel.log" >&2; die "pip wheel failed"; }
say "wheelhouse: $(ls "$context/src/.wheelhouse" | wc -l) wheels, $(du -sh "$context/src/.wheelhouse" | cut -f1)"
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)

previous=$(buildah inspect --type image --format '{{.FromImageID}}' "$tag" 2>/dev/null || true)
say "buildah bud $tag (offline: only the wheelhouse)"
buildah bud --quiet --isolation chroot --layers=false --build-arg "BASE=$base" --build-arg "BUILD_BASE=$build_base" \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$tag" -f "$context/src/deploy/container/Containerfile" "$context/src" > "$context/bud.log" 2>&1 \
  || { tail -30 "$context/bud.log" >&2; die "buildah bud failed"; }
current=$(buildah inspect --type image --format '{{.FromImageID}}' "$tag")
# the image this tag named before would stay behind untagged (vfs: hundreds of MB each)
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then buildah rmi "$previous" >/dev/null 2>&1 || true; fi
say "image $tag built ($(buildah images --format '{{.Size}}' "$tag" 2>/dev/null | head -1); base $(buildah images --format '{{.Size}}' "$base" 2>/dev/null | head -1))"

if [ "$smoke" = 1 ]; then
  ctr=$(buildah from "$tag")
  out=$(buildah run --isolation chroot "$ctr" -- modelmedic --help) || { buildah rm "$ctr" >/dev/null; die "modelmedic --help failed inside the image"; }
  # --help imports little; this imports the whole service (numpy, aiokafka, kubernetes, ...)
  # and loads the playbook plugins, as `modelmedic run` does at start.
  whoami=$(buildah run --isolation chroot "$ctr" -- python3 -c '
import os, modelmedic.app
from modelmedic.remediations import default_registry
default_registry.load_entry_points()
assert not default_registry.broken, default_registry.broken
print(os.getuid(), "/".join(default_registry.names()))') \
    || { buildah rm "$ctr" >/dev/null; die "the service does not import inside the image"; }
  buildah rm "$ctr" >/dev/null
  echo "$out" | grep -q "usage: modelmedic" || die "unexpected --help output: $out"
  say "smoke test passed: modelmedic --help and the service import run in the image (uid, playbooks: $whoami)"
fi

if [ "$archive" = 1 ]; then
  mkdir -p dist
  out="dist/modelmedic-${version}.oci.tar"
  rm -f "$out"
  buildah push --quiet "$tag" "oci-archive:$out:$tag" >/dev/null || die "buildah push to $out failed"
  say "OCI archive $out ($(du -h "$out" | cut -f1))"
fi
say "done: $tag"
