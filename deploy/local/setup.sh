#!/usr/bin/env bash
# One-time (and idempotent) setup of everything modelmedic needs on this machine:
# Debian packages, the Python environment, Kafka's jars and the local Kubernetes control
# plane's binaries. Each step says what it does and how long it took; a second run is fast.
# Set MODELMEDIC_SKIP_KUBE=1 to skip the Kubernetes build (about 6.5 minutes cold).
set -euo pipefail
cd "$(dirname "$0")/../.."
t0=$(date +%s)
say() { echo "[modelmedic] $* ($(( $(date +%s) - t0 ))s)" >&2; }
die() { echo "[modelmedic] error: $*" >&2; exit 1; }

need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v git >/dev/null || need_apt+=(git)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v chromium >/dev/null || need_apt+=(chromium)  # the status UI tests drive it (tests/integration/test_status_ui.py)
if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need_apt[*]}: run as root or: sudo apt-get install -y ${need_apt[*]}"
  say "installing Debian packages: ${need_apt[*]}"
  # Wait for another apt (unattended-upgrades at boot, a second setup) rather than fail on its lock.
  apt-get -o DPkg::Lock::Timeout=900 update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${need_apt[@]}" >/dev/null || die "apt-get install ${need_apt[*]} failed"
fi
python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null || die "Python 3.11+ is required (python3 --version)"

# modelmedic's hot path (the record decoder, the banks' recursion) is a Rust crate (native/), built by pip through setuptools-rust.
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || die "Rust's cargo is needed to build modelmedic's hot path (native/): install it with https://rustup.rs (rustup default stable), then run this again"

# Reinstall when the package definition or the native decoder changes.
stamp=.venv/.installed-$(cat pyproject.toml native/Cargo.toml native/Cargo.lock native/src/*.rs | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  say "creating the Python environment in .venv and installing modelmedic, with its Rust decoder (first time: about two minutes)"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test,bench]' || die "pip install failed (see above)"
  if [ -d examples/acme-playbooks ]; then .venv/bin/pip install -q -e examples/acme-playbooks || die "example plugin install failed"; fi
  rm -f .venv/.installed-*; touch "$stamp"
fi
say "Python environment ready"

python3 deploy/local/kafka.py install || die "Kafka install failed"
say "Kafka ready to start"

if [ "${MODELMEDIC_SKIP_KUBE:-0}" != 1 ]; then
  python3 deploy/local/kube.py build || die "the local Kubernetes build failed (see above)"
  say "Kubernetes control plane binaries ready"
fi
# helm checks the chart in the tests (deploy/helm/tool.py: built from the Go module proxy
# once, about 3 minutes cold, cached in ~/.cache/modelmedic/helm).
python3 deploy/helm/tool.py build >/dev/null || die "the helm build failed (see above)"
say "helm ready"
say "setup complete"
