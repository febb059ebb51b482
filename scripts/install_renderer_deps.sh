#!/usr/bin/env bash
# System packages `pose-kp render` and `pose-kp new-object` need, then a test render
# (idempotent: checks before installing). Called by scripts/setup_env.sh after the pinned Python
# packages (pyrender-maintained, PyOpenGL, trimesh, scikit-image: requirements.txt) are in.
#
#   PYTHON=/path/to/venv/bin/python scripts/install_renderer_deps.sh
#
# System packages (Debian 12): libosmesa6 (CPU OpenGL for pyrender), opencv-doc (background photos).
# Set SKIP_APT=1 to skip them (e.g. without root; the renderer then needs them present).
set -euo pipefail

PY="${PYTHON:-python3}"
APT_PACKAGES=(libosmesa6 opencv-doc)

if [[ "${SKIP_APT:-0}" != 1 ]]; then
    missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            echo "[renderer deps] apt: $pkg already installed"
        else
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]})); then
        SUDO=''
        if [[ $(id -u) != 0 ]]; then
            if ! command -v sudo >/dev/null 2>&1; then
                echo "[renderer deps] ERROR: Debian packages missing: ${missing[*]}. Install them as root: apt-get install -y ${missing[*]}" >&2
                exit 1
            fi
            SUDO='sudo'
        fi
        echo "[renderer deps] apt-get install -y ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
    fi
fi

echo '[renderer deps] checking an offscreen render (PYOPENGL_PLATFORM=osmesa)'
PYOPENGL_PLATFORM=osmesa "$PY" - <<'EOF'
import pyrender
import trimesh

renderer = pyrender.OffscreenRenderer(32, 32)
scene = pyrender.Scene()
scene.add(pyrender.Mesh.from_trimesh(trimesh.creation.box()), pose=[[1, 0, 0, 0], [0, 1, 0, 0],
                                                                   [0, 0, 1, -3], [0, 0, 0, 1]])
scene.add(pyrender.PerspectiveCamera(yfov=1.0))
_, depth = renderer.render(scene)
renderer.delete()
assert depth.max() > 0, 'offscreen render produced an empty depth buffer'
print('[renderer deps] offscreen rendering works')
EOF
