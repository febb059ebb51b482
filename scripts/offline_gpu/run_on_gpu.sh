#!/usr/bin/env bash
# On an offline NVIDIA GPU machine (as root, run from the repository with .offline_bundle/ made by
# scripts/offline_gpu/make_bundle.sh): install the bundle into /tmp/site, render with EGL on the
# GPU and run scripts/train_driller_model.sh (its environment settings pass through, e.g.
# ABLATION=1 DEADLINE_S=480 TRAIN_WORKERS=14). Then packs each run's best.pt (without the
# optimizer state), metrics and curves, and the logs, into ${OUT:-/tmp/out}/results.tgz.part-*
# (15 MB pieces; `cat results.tgz.part-* | tar xz` unpacks them into runs/ layout).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
source scripts/offline_gpu/offline_env.sh
offline_setup || exit $?
RENDER_WORKERS="${RENDER_WORKERS:-$(nproc)}" PYTHON=python3 scripts/train_driller_model.sh \
  > "$OUT/recipe.log" 2>&1
echo "recipe exit $? after $SECONDS s"
tr '\r' '\n' < "$OUT/recipe.log" | grep -E 'rendered|epoch [0-9]+:|deadline|rror' | tail -40
python3 - <<'PY'
"""Copy each run's best.pt without its optimizer state, with metrics and curves."""
import glob
import os
import shutil

import torch

for path in sorted(glob.glob('runs/*/best.pt')):
    name = path.split('/')[1]
    data = torch.load(path, map_location='cpu', weights_only=True)
    data['training'] = None
    os.makedirs(f'/tmp/pack/{name}', exist_ok=True)
    torch.save(data, f'/tmp/pack/{name}/best.pt')
    for extra in ('metrics.json', 'training_curves.png'):
        if os.path.exists(f'runs/{name}/{extra}'):
            shutil.copy(f'runs/{name}/{extra}', f'/tmp/pack/{name}/')
    print(name, 'epoch', data['meta']['epoch'])
PY
cp -r runs/logs /tmp/pack/
tar czf /tmp/results.tgz -C /tmp/pack . && split -b 15M /tmp/results.tgz "$OUT/results.tgz.part-"
ls -la "$OUT"
