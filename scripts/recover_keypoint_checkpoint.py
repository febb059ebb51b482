"""Rebuild a training checkpoint of a stacked hourglass from its exported ONNX model.

network/onnx_recovery.py does the work; this script takes the crops that set the rebuilt batch
norms from a rendered training dataset, checks the rebuilt network against ONNX Runtime and
writes a checkpoint that `pose-kp train` can start from (`init_weights`). `--stacks K` keeps the
first K hourglasses.

    python scripts/recover_keypoint_checkpoint.py models/driller/keypoints.onnx \
        --dataset data/driller_train_v2 --out runs/recovered/driller_stack1.pt --stacks 1
"""

import argparse
from pathlib import Path
import sys

import numpy as np
import torch

from pose_kp_ros.geometry.object_model import ObjectModel
from pose_kp_ros.network.checkpoint import load_model
from pose_kp_ros.network.checkpoint_format import save_checkpoint
from pose_kp_ros.network.onnx_recovery import first_stacks, recover_hourglass
from pose_kp_ros.training.keypoint_dataset import KeypointDataset
from pose_kp_ros.training.records import load_records


def main(argv=None):
    """Rebuild, check against ONNX Runtime, save; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('onnx_model', type=Path)
    parser.add_argument('--dataset', required=True, help='rendered training dataset folder')
    parser.add_argument('--object', default='objects/driller.yaml')
    parser.add_argument('--out', required=True, type=Path)
    parser.add_argument('--stacks', type=int, default=0, help='keep the first K (0: all)')
    parser.add_argument('--crops', type=int, default=256, help='crops for the statistics')
    args = parser.parse_args(argv)
    exported, meta = load_model(args.onnx_model)
    _, _, records = load_records(args.dataset, meta['keypoint_names'])
    dataset = KeypointDataset(records, meta['input_size'], meta['heatmap_size'],
                              padding=meta['padding'], low_pass_px=meta['low_pass_px'],
                              object_models=[ObjectModel.from_yaml(args.object)])
    rows = np.random.default_rng(0).permutation(len(dataset))[:args.crops]
    crops = torch.stack([dataset[int(row)]['image'] for row in rows])
    full, meta = recover_hourglass(args.onnx_model, crops)
    with torch.no_grad():
        difference = float(np.abs(full(crops[:16])[-1].numpy()
                                  - np.asarray(exported(crops[:16]))).max())
    print(f'rebuilt network against ONNX Runtime: largest heatmap difference {difference:.2e}')
    if difference > 1e-3:
        print('the rebuilt network does not compute the ONNX model', file=sys.stderr)
        return 1
    network = full
    meta = {key: value for key, value in meta.items() if key not in ('export', 'exported_from')}
    if args.stacks:
        network = first_stacks(full, args.stacks)
        meta['architecture'] = network.config.to_dict()
    meta['recovered_from'] = str(args.onnx_model)
    save_checkpoint(args.out, network, meta)
    print(f'wrote {args.out} ({network.config.num_stacks} of {full.config.num_stacks} stacks)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
