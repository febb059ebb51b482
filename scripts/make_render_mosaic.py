"""Draw a mosaic of rendered training images with their labels, to check a dataset by eye.

    python scripts/make_render_mosaic.py DATASET [--first 0] [--count 8] [--columns 4]
        [--scale 0.75] [--out docs/figures/lmo_all_renders.png]

Each labelled instance gets its box in its object's colour, its name and visible fraction, and
its keypoints: filled dots where visible, rings where hidden (by another object, a distractor or
itself); keypoints outside the image are not drawn. The dataset is read as training reads it
(`pose_kp_ros.training.records.read_dataset`, format 1 or 2).
"""

import argparse
from pathlib import Path
import sys

import cv2
import numpy as np

from pose_kp_ros.training.records import DatasetError, read_dataset, read_image

COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))
"""RGB colour of each object index (repeating)."""


def draw_instances(image, records, names):
    """Draw the labels of one image's instance records onto an RGB uint8 image (H, W, 3)."""
    for record in records:
        colour = COLOURS[record.object_index % len(COLOURS)]
        x0, y0, x1, y1 = (int(round(value)) for value in record.box_xyxy)
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, 1, cv2.LINE_AA)
        for (u, v), flag in zip(record.keypoints, record.visibility):
            if flag:
                cv2.circle(image, (int(round(u)), int(round(v))), 3, colour,
                           -1 if flag == 2 else 1, cv2.LINE_AA)
        fraction = '' if record.visible_fraction is None else f' {record.visible_fraction:.0%}'
        text = f'{names[record.object_index]}{fraction}'
        origin = (max(x0, 0), max(y0 - 4, 10))
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3,
                    cv2.LINE_AA)
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return image


def mosaic(root, first, count, columns, scale):
    """Return an RGB mosaic (rows x columns tiles) of images first..first+count-1 of `root`."""
    objects, records = read_dataset(root)
    names = [item.name for item in objects]
    by_image = {}
    for record in records:
        by_image.setdefault(record.image, []).append(record)
    images = list(by_image)[first:first + count]
    if not images:
        raise DatasetError(f'{root}: no labelled image from index {first}')
    tiles = []
    for image in images:
        tile = draw_instances(read_image(image), by_image[image], names)
        tiles.append(cv2.resize(tile, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    height, width = tiles[0].shape[:2]
    tiles += [np.full((height, width, 3), 255, np.uint8)] * (-len(tiles) % columns)
    rows = [np.hstack([cv2.resize(tile, (width, height)) for tile in tiles[i:i + columns]])
            for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def main(argv=None):
    """Write the mosaic; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dataset', help='dataset folder (docs/dataset_format.md)')
    parser.add_argument('--first', type=int, default=0, help='first image index')
    parser.add_argument('--count', type=int, default=8, help='number of images')
    parser.add_argument('--columns', type=int, default=4)
    parser.add_argument('--scale', type=float, default=0.75, help='tile size / image size')
    parser.add_argument('--out', default=str(Path('docs') / 'figures' / 'lmo_all_renders.png'))
    args = parser.parse_args(argv)
    try:
        picture = mosaic(args.dataset, args.first, args.count, args.columns, args.scale)
    except DatasetError as error:
        print(f'make_render_mosaic: {error}', file=sys.stderr)
        return 1
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    print(f'{args.out}: {picture.shape[1]}x{picture.shape[0]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
