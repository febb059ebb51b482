"""`pose-kp build-shape-basis`: PCA shape basis of a category from several object YAMLs.

Example:
    pose-kp build-shape-basis objects/box_*.yaml --name box_category --output out.yaml
"""

import argparse
from collections.abc import Sequence
import sys

import numpy as np

from pose_kp_ros.geometry.object_model import ObjectModel, ObjectModelError
from pose_kp_ros.geometry.shape_basis import pca_shape_basis


def build_category_model(models: Sequence[ObjectModel], name: str,
                         num_components: int | None = None, align: bool = True) -> ObjectModel:
    """Return a deformable ObjectModel of a category from rigid models with the same keypoints.

    num_components: basis shapes M (None: all with non-zero variance); align: Procrustes-align
    the keypoint sets first.

    The diameter is the largest input diameter; symmetric only if every input is.
    """
    names = models[0].keypoint_names
    for model in models[1:]:
        if model.keypoint_names != names:
            raise ObjectModelError(f'{model.source}: keypoint_names: differ from '
                                   f'{models[0].source} ({list(names)})')
    mean, basis, prior_scale = pca_shape_basis(np.stack([m.keypoints for m in models]),
                                               num_components=num_components, align=align)
    return ObjectModel(name=name, keypoint_names=names, keypoints=mean,
                       basis=basis if len(basis) else None,
                       prior_scale=prior_scale if len(basis) else None,
                       diameter=max(m.diameter for m in models),
                       symmetric=all(m.symmetric for m in models))


def main(argv: Sequence[str] | None = None) -> int:
    """Build a category YAML from object YAMLs; return the exit code."""
    parser = argparse.ArgumentParser(
        prog='pose-kp build-shape-basis',
        description='Build a PCA shape basis (mean B0, M basis shapes, prior scales) from the '
                    'keypoints of several objects of one category (same keypoint names).')
    parser.add_argument('objects', nargs='+', help='object YAMLs (at least 2)')
    parser.add_argument('--name', required=True, help='category name, [a-z0-9_]+')
    parser.add_argument('--output', required=True, help='category YAML to write')
    parser.add_argument('--components', type=int, default=None,
                        help='number of basis shapes M (default: all with non-zero variance)')
    parser.add_argument('--no-align', action='store_true',
                        help='skip rigid Procrustes alignment (keypoints already share a frame)')
    args = parser.parse_args(argv)
    if len(args.objects) < 2:
        parser.error('at least 2 object YAMLs are needed')
    try:
        models = [ObjectModel.from_yaml(path) for path in args.objects]
        category = build_category_model(models, args.name, args.components, not args.no_align)
    except (ObjectModelError, ValueError) as error:
        print(f'pose-kp build-shape-basis: {error}', file=sys.stderr)
        return 1
    category.to_yaml(args.output)
    print(f'wrote {args.output}: {category.num_keypoints} keypoints, {category.num_basis} basis '
          f'shapes, prior scales (m) {np.round(category.prior_scale, 4).tolist()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
