"""Full-image object detector: a small CenterNet ("Objects as Points", Zhou et al. 2019).

The whole RGB image is letterboxed (aspect kept, centred, padded) to the network's input size;
a light fully-convolutional network (inverted-residual stages at strides 4, 8, 16 and 32 plus a
top-down neck back to stride 4) predicts, at every output cell:

- one centre heatmap per class (sigmoid), trained with the penalty-reduced focal loss against
  Gaussian bumps at the box centres whose radius follows the box size (CornerNet's radius: the
  largest corner shift that keeps IoU >= `min_overlap`);
- the box width and height as log(output pixels) (L1 loss at the centre cells);
- the sub-pixel offset of the centre from its cell (L1 loss at the centre cells).

Decoding keeps heatmap peaks (3x3 max-pool equality), takes the top-k and maps the boxes back to
image pixels exactly. Coordinates follow OpenCV's pixel-centre convention in every frame (image,
network input, output map); a box's edges are where its pixels' outer edges are (a box covering
pixels 0..9 is [-0.5, 9.5]), and all maps between frames are axis-aligned affines (2, 3) that
carry points and edges alike:

    input = letterbox affine (image)       output = (input - (stride - 1) / 2) / stride

    >>> detector = ObjectDetector.from_file('models/detector.pt', object_names=['driller'])
    >>> found = detector.detect(image_rgb)   # doctest: +SKIP
    >>> found[0].object_name, found[0].box_xyxy, found[0].score   # doctest: +SKIP

A checkpoint is a `torch.save` dict {'meta', 'model', 'training'} like the keypoint network's
(`pose_kp_ros.network.checkpoint.save_checkpoint` writes it), with `meta['format']` =
'pose_kp_ros.detector_checkpoint' (see `make_detector_meta`).
"""

import copy
from dataclasses import asdict, dataclass, fields
import math

import cv2
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from pose_kp_ros.network.checkpoint import (
    CheckpointError,
    code_version,
    read_checkpoint_file,
)
from pose_kp_ros.network.crops import compose_affines, heatmap_to_crop_affine, invert_affines
from pose_kp_ros.network.dataset import IMAGENET_MEAN, IMAGENET_STD
from pose_kp_ros.network.mobilenet_v2 import MobileNetV2

FORMAT = 'pose_kp_ros.detector_checkpoint'
FORMAT_VERSION = 1
OUTPUT_STRIDE = 4
STAGE_STRIDES = (4, 8, 16, 32)
ENCODERS = ('none', 'mobilenet_v2')
_META_KEYS = ('class_names', 'architecture', 'input_size', 'mean', 'std', 'pad_value',
              'score_threshold')
_HEATMAP_PRIOR = 0.1


class DetectorConfigError(ValueError):
    """A detector architecture that cannot be built (names the field)."""


@dataclass(frozen=True)
class DetectorConfig:
    """Architecture of the CenterNet detector.

    Attributes:
        num_classes: centre heatmaps (one per object class, in the checkpoint's class order).
        input_width, input_height: network input in pixels (multiples of 32).
        stem_channels: channels of the stride-2 stem convolution.
        stage_channels: channels of the stages at strides 4, 8, 16, 32.
        stage_blocks: inverted-residual blocks per stage (the first one strides by 2).
        expansion: inverted-residual expansion factor.
        neck_channels: channels of the top-down neck (and its stride-4 output).
        head_channels: hidden channels of each prediction head.
        encoder: 'none' (the stem and stages above, trained from scratch) or 'mobilenet_v2'
            (MobileNetV2's blocks 0-17, ImageNet-pretrainable, replace stem and stages; its
            features at strides 4-32 feed the neck; stem/stage fields are then unused).
    """

    num_classes: int
    input_width: int = 256
    input_height: int = 192
    stem_channels: int = 16
    stage_channels: tuple = (24, 40, 80, 128)
    stage_blocks: tuple = (1, 2, 2, 2)
    expansion: int = 4
    neck_channels: int = 48
    head_channels: int = 48
    encoder: str = 'none'

    def __post_init__(self):
        """Check that the configuration describes a buildable network."""
        object.__setattr__(self, 'stage_channels', tuple(self.stage_channels))
        object.__setattr__(self, 'stage_blocks', tuple(self.stage_blocks))
        for name in ('num_classes', 'input_width', 'input_height', 'stem_channels', 'expansion',
                     'neck_channels', 'head_channels'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DetectorConfigError(f'detector {name} must be a positive integer, '
                                          f'got {value!r}')
        for name in ('stage_channels', 'stage_blocks'):
            value = getattr(self, name)
            if len(value) != len(STAGE_STRIDES) or not all(
                    isinstance(v, int) and v >= 1 for v in value):
                raise DetectorConfigError(f'detector {name} must be {len(STAGE_STRIDES)} '
                                          f'positive integers, got {list(value)!r}')
        if self.encoder not in ENCODERS:
            raise DetectorConfigError(f'detector encoder must be one of {ENCODERS}, got '
                                      f'{self.encoder!r}')
        for name in ('input_width', 'input_height'):
            if getattr(self, name) % STAGE_STRIDES[-1]:
                raise DetectorConfigError(f'detector {name} must be a multiple of '
                                          f'{STAGE_STRIDES[-1]}, got {getattr(self, name)}')

    @property
    def output_size(self):
        """(width, height) of the stride-4 output maps."""
        return self.input_width // OUTPUT_STRIDE, self.input_height // OUTPUT_STRIDE

    def to_dict(self):
        """Return the configuration as a plain dict (for checkpoints and JSON)."""
        values = asdict(self)
        values['stage_channels'] = list(self.stage_channels)
        values['stage_blocks'] = list(self.stage_blocks)
        return values

    @classmethod
    def from_dict(cls, values):
        """Build from a dict, naming unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DetectorConfigError(f'unknown detector architecture keys {unknown}; '
                                      f'known: {sorted(known)}')
        return cls(**values)


# ----------------------------------------------------------------------------------- network


def _conv_bn(cin, cout, kernel=1, stride=1, groups=1, relu=True):
    """Return conv (no bias) + batch norm (+ ReLU6) as a Sequential."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise (maybe strided), 1x1 project, residual."""

    def __init__(self, cin, cout, stride, expansion):
        super().__init__()
        hidden = cin * expansion
        self.body = nn.Sequential(
            _conv_bn(cin, hidden), _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            _conv_bn(hidden, cout, relu=False))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        """Map (B, cin, H, W) to (B, cout, H / stride, W / stride)."""
        out = self.body(x)
        return x + out if self.residual else out


def _separable(channels_in, channels_out):
    """Return a 3x3 depthwise + 1x1 pointwise convolution pair with BN and ReLU6."""
    return nn.Sequential(_conv_bn(channels_in, channels_in, 3, groups=channels_in),
                         _conv_bn(channels_in, channels_out))


class CenterNet(nn.Module):
    """Backbone (stem + 4 inverted-residual stages, or MobileNetV2) + top-down neck + three heads.

    forward(images (B, 3, Hin, Win) normalised) returns a dict of stride-4 maps:
        'heatmap' (B, C, Hin / 4, Win / 4) logits; 'size' (B, 2, ...) log(width, height) in
        output pixels; 'offset' (B, 2, ...) centre minus cell, output pixels.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        if config.encoder == 'mobilenet_v2':
            self.encoder = MobileNetV2(num_blocks=18)
            channels = self.encoder.tap_channels(STAGE_STRIDES)
        else:
            self.encoder = None
            self.stem = _conv_bn(3, config.stem_channels, 3, 2)
            stages, cin = [], config.stem_channels
            for cout, blocks in zip(config.stage_channels, config.stage_blocks):
                stages.append(nn.Sequential(*(InvertedResidual(cin if i == 0 else cout, cout,
                                                               2 if i == 0 else 1,
                                                               config.expansion)
                                              for i in range(blocks))))
                cin = cout
            self.stages = nn.ModuleList(stages)
            channels = config.stage_channels
        neck = config.neck_channels
        self.laterals = nn.ModuleList(_conv_bn(c, neck) for c in channels)
        self.smooth = nn.ModuleList(_separable(neck, neck) for _ in channels[:-1])
        self.heads = nn.ModuleDict({
            name: nn.Sequential(_separable(neck, config.head_channels),
                                nn.Conv2d(config.head_channels, channels, 1))
            for name, channels in (('heatmap', config.num_classes), ('size', 2), ('offset', 2))})
        nn.init.constant_(self.heads['heatmap'][-1].bias,
                          -math.log((1 - _HEATMAP_PRIOR) / _HEATMAP_PRIOR))

    def forward(self, images):
        """Return {'heatmap', 'size', 'offset'} maps at stride 4 (see the class docstring)."""
        if self.encoder is not None:
            features = self.encoder.taps(images, STAGE_STRIDES)
        else:
            x = self.stem(images)
            features = []
            for stage in self.stages:
                x = stage(x)
                features.append(x)
        top = self.laterals[-1](features[-1])
        for i in range(len(features) - 2, -1, -1):
            top = F.interpolate(top, scale_factor=2.0, mode='nearest')
            top = self.smooth[i](self.laterals[i](features[i]) + top)
        return {name: head(top) for name, head in self.heads.items()}


def fold_batch_norm(model):
    """Return a copy of an eval-mode model with every conv + BatchNorm2d pair merged into the conv.

    For inference only (the same outputs, fewer memory passes): conv weights are scaled by
    gamma / sqrt(var + eps) and the bias becomes beta - mean * gamma / sqrt(var + eps).
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, norm = module[i], module[i + 1]
            if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)):
                continue
            scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
            merged = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                               conv.stride, conv.padding, groups=conv.groups, bias=True)
            merged.weight.data = conv.weight.detach() * scale[:, None, None, None]
            bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
            merged.bias.data = norm.bias.detach() + (bias - norm.running_mean) * scale
            module[i], module[i + 1] = merged, nn.Identity()
    return folded


# ---------------------------------------------------------------------------- letterbox map


def scale_affine(image_width, image_height, scaled_width, scaled_height, shift_x=0, shift_y=0):
    """Return the (2, 3) affine of resizing an image to scaled size and shifting it by pixels.

    cv2.resize maps pixel centres u -> (u + 0.5) * sx - 0.5 with sx = scaled / original; the
    integer shift then places the resized image in a canvas.
    """
    sx, sy = scaled_width / image_width, scaled_height / image_height
    return np.array([[sx, 0.0, 0.5 * sx - 0.5 + shift_x], [0.0, sy, 0.5 * sy - 0.5 + shift_y]])


def letterbox_geometry(image_width, image_height, input_width, input_height):
    """Return (scaled width, scaled height, shift x, shift y) of the centred letterbox."""
    scale = min(input_width / image_width, input_height / image_height)
    width = min(max(int(round(image_width * scale)), 1), input_width)
    height = min(max(int(round(image_height * scale)), 1), input_height)
    return width, height, (input_width - width) // 2, (input_height - height) // 2


def resize_into_canvas(image, scaled_width, scaled_height, shift_x, shift_y, canvas_width,
                       canvas_height, pad_value):
    """Resize image (H, W, 3) uint8 and paste it at integer (shift_x, shift_y) into a canvas.

    Parts falling outside the canvas are cut; the rest of the canvas is `pad_value` (3,).
    Area interpolation when shrinking, bilinear when enlarging (both pixel-centre aligned).
    Returns the canvas (canvas_height, canvas_width, 3) uint8.
    """
    height, width = image.shape[:2]
    shrinking = scaled_width < width and scaled_height < height
    resized = cv2.resize(image, (scaled_width, scaled_height),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    canvas = np.empty((canvas_height, canvas_width, 3), np.uint8)
    canvas[:] = np.asarray(pad_value, np.uint8)
    x0, y0 = max(shift_x, 0), max(shift_y, 0)
    x1, y1 = min(shift_x + scaled_width, canvas_width), min(shift_y + scaled_height,
                                                           canvas_height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = resized[y0 - shift_y:y1 - shift_y, x0 - shift_x:x1 - shift_x]
    return canvas


def letterbox(image, input_width, input_height, pad_value):
    """Letterbox an RGB image to the network input.

    Returns:
        (input_height, input_width, 3) uint8 image and the image->input affine (2, 3).
    """
    height, width = image.shape[:2]
    geometry = letterbox_geometry(width, height, input_width, input_height)
    canvas = resize_into_canvas(image, *geometry, input_width, input_height, pad_value)
    return canvas, scale_affine(width, height, *geometry)


def output_to_input_affine():
    """Return the (2, 3) affine from stride-4 output pixels to network input pixels."""
    return heatmap_to_crop_affine(OUTPUT_STRIDE, 1)


def map_boxes(affines, boxes):
    """Map boxes (..., M, 4) xyxy by axis-aligned affines (..., 2, 3) with positive scales."""
    scale = affines[..., None, [0, 1, 0, 1], [0, 1, 0, 1]]
    offset = affines[..., None, [0, 1, 0, 1], 2]
    return boxes * scale + offset


# ------------------------------------------------------------------------------ targets/loss


def gaussian_radius(width, height, min_overlap=0.7):
    """Return CornerNet's Gaussian radius (output pixels, >= 0) for boxes of (width, height).

    The largest corner shift r such that a box moved, shrunk or grown by r per corner keeps
    IoU >= min_overlap with the true box; the smallest of the three cases' roots.
    """
    w, h = np.asarray(width, np.float64), np.asarray(height, np.float64)
    o = min_overlap
    b1, c1 = w + h, w * h * (1 - o) / (1 + o)
    r1 = (b1 - np.sqrt(np.maximum(b1 ** 2 - 4 * c1, 0))) / 2
    b2, c2 = 2 * (w + h), w * h * (1 - o)
    r2 = (b2 - np.sqrt(np.maximum(b2 ** 2 - 16 * c2, 0))) / 8
    b3, c3 = 2 * o * (w + h), (o - 1) * w * h
    r3 = (-b3 + np.sqrt(np.maximum(b3 ** 2 - 16 * o * c3, 0))) / (8 * o)
    return np.maximum(np.minimum(np.minimum(r1, r2), r3), 0.0)


def encode_targets(boxes, classes, num_classes, output_size, max_objects, min_overlap=0.7):
    """Return CenterNet training targets of one image.

    Args:
        boxes: (M, 4) xyxy boxes in output pixels (already clipped to the map).
        classes: (M,) class indices.
        num_classes: heatmap channels C.
        output_size: (width, height) of the output maps.
        max_objects: K, slots for the regression targets (extra objects keep their heatmap
            bump but no size/offset target).
        min_overlap: IoU kept by the Gaussian radius (CornerNet).

    Returns:
        dict of numpy arrays: heatmap (C, H, W) float32 with peak exactly 1 at each centre cell;
        indices (K,) int64 flat cell index y * W + x; mask (K,) float32 1 for used slots;
        size (K, 2) float32 log(width, height); offset (K, 2) float32 centre minus cell.
    """
    width, height = output_size
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    heatmap = np.zeros((num_classes, height, width), np.float32)
    targets = {'heatmap': heatmap, 'indices': np.zeros(max_objects, np.int64),
               'mask': np.zeros(max_objects, np.float32),
               'size': np.zeros((max_objects, 2), np.float32),
               'offset': np.zeros((max_objects, 2), np.float32)}
    sizes = boxes[:, 2:] - boxes[:, :2]
    radii = np.floor(gaussian_radius(sizes[:, 0], sizes[:, 1], min_overlap))
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    cells = np.clip(np.round(centres), 0, [width - 1, height - 1]).astype(np.int64)
    for i in range(len(boxes)):
        (x, y), radius = cells[i], int(radii[i])
        sigma = (2 * radius + 1) / 6
        xs = np.arange(max(x - radius, 0), min(x + radius + 1, width))
        ys = np.arange(max(y - radius, 0), min(y + radius + 1, height))
        bump = np.exp(-((xs[None] - x) ** 2 + (ys[:, None] - y) ** 2) / (2 * sigma ** 2))
        region = heatmap[classes[i], ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
        np.maximum(region, bump, out=region)
        if i < max_objects:
            targets['indices'][i] = y * width + x
            targets['mask'][i] = 1.0
            targets['size'][i] = np.log(np.maximum(sizes[i], 1e-3))
            targets['offset'][i] = centres[i] - cells[i]
    return targets


def focal_loss(logits, target, alpha=2.0, beta=4.0):
    """Return CenterNet's penalty-reduced focal loss, summed and divided by the object count.

    Args:
        logits: (B, C, H, W) heatmap logits.
        target: (B, C, H, W) Gaussian targets, 1 exactly at object centres.
    """
    logits, target = logits.float(), target.float()
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    positive = target >= 1.0
    positive_loss = ((1 - p) ** alpha * log_p)[positive].sum()
    negative_loss = ((1 - target) ** beta * p ** alpha * log_not_p)[~positive].sum()
    return -(positive_loss + negative_loss) / positive.sum().clamp(min=1)


def _gather(maps, indices):
    """Return maps (B, D, H, W) at flat cell indices (B, K) as (B, K, D)."""
    flat = maps.flatten(2)
    return flat.gather(2, indices[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)


def regression_loss(maps, indices, mask, target):
    """Return the mean L1 error of maps (B, 2, H, W) at the objects' cells against (B, K, 2)."""
    error = (_gather(maps.float(), indices) - target).abs().sum(-1)
    return (error * mask).sum() / (2 * mask.sum()).clamp(min=1)


def detection_losses(outputs, batch, size_weight=1.0, offset_weight=1.0):
    """Return (total loss, {'heatmap', 'size', 'offset'} float parts) of a batch.

    `batch` holds the stacked targets of encode_targets as tensors on the outputs' device.
    """
    parts = {'heatmap': focal_loss(outputs['heatmap'], batch['heatmap']),
             'size': regression_loss(outputs['size'], batch['indices'], batch['mask'],
                                     batch['size']),
             'offset': regression_loss(outputs['offset'], batch['indices'], batch['mask'],
                                       batch['offset'])}
    total = parts['heatmap'] + size_weight * parts['size'] + offset_weight * parts['offset']
    return total, {name: value.item() for name, value in parts.items()}


# ---------------------------------------------------------------------------------- decoding


def decode_outputs(heatmap, size, offset, max_detections=20):
    """Decode stride-4 maps into the top-k peaks.

    Args:
        heatmap: (B, C, H, W) probabilities in [0, 1] (sigmoid of the logits).
        size: (B, 2, H, W) log(width, height), output pixels.
        offset: (B, 2, H, W) centre minus cell, output pixels.
        max_detections: k (at most C * H * W).

    Returns:
        boxes (B, k, 4) xyxy output pixels, scores (B, k), classes (B, k) int64; best first.
    """
    batch, classes, height, width = heatmap.shape
    peaks = heatmap * (F.max_pool2d(heatmap, 3, 1, 1) == heatmap)
    k = min(max_detections, classes * height * width)
    scores, flat = peaks.flatten(1).topk(k)
    cells = flat % (height * width)
    centre = torch.stack([cells % width, cells // width], -1).to(heatmap.dtype)
    centre = centre + _gather(offset, cells)
    half = _gather(size, cells).exp() / 2
    boxes = torch.cat([centre - half, centre + half], -1)
    return boxes, scores, flat // (height * width)


# -------------------------------------------------------------------------------- evaluation


def pairwise_iou(boxes_a, boxes_b):
    """Return IoU (M, N) between xyxy boxes (M, 4) and (N, 4) (0 for empty boxes)."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(1, -1, 4)
    inter = (np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
             * np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0,
                       None))
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_detections(boxes, scores, classes, gt_boxes, gt_classes, iou_threshold=0.5):
    """Greedily match detections (best score first) to same-class ground truth of one image.

    Each ground-truth box is matched at most once, by the highest-scoring detection with
    IoU >= iou_threshold among those still free. Returns (matched (D,) bool, iou (D,) float64:
    IoU with the matched box, 0 when unmatched).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    classes, gt_classes = np.asarray(classes).reshape(-1), np.asarray(gt_classes).reshape(-1)
    ious = pairwise_iou(boxes, gt_boxes)
    ious[classes[:, None] != gt_classes[None, :]] = 0.0
    matched, matched_iou = np.zeros(len(boxes), bool), np.zeros(len(boxes))
    free = np.ones(len(gt_boxes), bool)
    for d in np.argsort(-np.asarray(scores, np.float64).reshape(-1), kind='stable'):
        candidates = np.where(free, ious[d], -1.0)
        if len(candidates) and candidates.max() >= iou_threshold:
            g = int(candidates.argmax())
            free[g], matched[d], matched_iou[d] = False, True, candidates[g]
    return matched, matched_iou


class DetectionEvaluator:
    """Accumulates matches over images; summary gives recall, precision, mean IoU and AP@IoU.

    Add every decoded detection (even low scores) so AP sees the whole ranking; recall,
    precision and mean IoU count only detections with score >= the summary's threshold.
    """

    def __init__(self, num_classes, iou_threshold=0.5):
        self.num_classes, self.iou_threshold = num_classes, iou_threshold
        self.scores, self.classes, self.matched, self.ious = [], [], [], []
        self.gt_counts = np.zeros(num_classes, np.int64)

    def add(self, boxes, scores, classes, gt_boxes, gt_classes):
        """Add one image's detections (D, 4), (D,), (D,) and ground truth (G, 4), (G,)."""
        matched, ious = match_detections(boxes, scores, classes, gt_boxes, gt_classes,
                                         self.iou_threshold)
        self.scores.append(np.asarray(scores, np.float64).reshape(-1))
        self.classes.append(np.asarray(classes, np.int64).reshape(-1))
        self.matched.append(matched)
        self.ious.append(ious)
        self.gt_counts += np.bincount(np.asarray(gt_classes, np.int64).reshape(-1),
                                      minlength=self.num_classes)

    def state(self):
        """Return the accumulated arrays (for merging evaluators across processes)."""
        return {'scores': _join(self.scores, np.float64),
                'classes': _join(self.classes, np.int64), 'matched': _join(self.matched, bool),
                'ious': _join(self.ious, np.float64), 'gt_counts': self.gt_counts.copy()}

    def merge(self, state):
        """Add the accumulated arrays of another evaluator (from `state`)."""
        for name in ('scores', 'classes', 'matched', 'ious'):
            getattr(self, name).append(state[name])
        self.gt_counts += state['gt_counts']

    def summary(self, score_threshold=0.3):
        """Return {'recall', 'precision', 'mean_iou', 'ap50', 'detections', 'objects'}.

        recall = matched / ground truth, precision = matched / detections (score >= threshold;
        1 when there are none), mean_iou over matched detections, ap50 = mean over classes with
        ground truth of the all-point interpolated area under the precision-recall curve.
        """
        state = self.state()
        kept = state['scores'] >= score_threshold
        hits = int(state['matched'][kept].sum())
        objects = int(self.gt_counts.sum())
        precisions = []
        for c in np.flatnonzero(self.gt_counts):
            mine = state['classes'] == c
            order = np.argsort(-state['scores'][mine], kind='stable')
            true_positives = np.cumsum(state['matched'][mine][order])
            recall = np.concatenate([[0.0], true_positives / self.gt_counts[c]])
            precision = np.concatenate([[1.0], true_positives / np.arange(1, len(order) + 1)])
            envelope = np.maximum.accumulate(precision[::-1])[::-1]
            precisions.append(float(np.sum(np.diff(recall) * envelope[1:])))
        return {'recall': hits / objects if objects else 1.0,
                'precision': hits / int(kept.sum()) if kept.any() else 1.0,
                'mean_iou': float(state['ious'][kept & state['matched']].mean()) if hits else 0.0,
                'ap50': float(np.mean(precisions)) if precisions else 0.0,
                'detections': int(kept.sum()), 'objects': objects}


def _join(parts, dtype):
    """Concatenate 1-D arrays (an empty array of dtype when there are none)."""
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


# ---------------------------------------------------------------------------- checkpoints


def make_detector_meta(config, class_names, score_threshold=0.3, training_config=None,
                       epoch=0, metrics=None, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Return the metadata dict of a detector checkpoint (plain types only).

    Keys: format, format_version, class_names (heatmap order), architecture
    (DetectorConfig.to_dict()), input_size [W, H], output_stride, mean, std (RGB in [0, 1]),
    pad_value (letterbox RGB 0-255), score_threshold (default of ObjectDetector),
    training_config, epoch (completed), metrics (last validation), code_version.
    """
    if len(class_names) != config.num_classes:
        raise CheckpointError(f'{len(class_names)} class names for a detector with '
                              f'{config.num_classes} heatmaps')
    return {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'class_names': [str(n) for n in class_names], 'architecture': config.to_dict(),
        'input_size': [config.input_width, config.input_height], 'output_stride': OUTPUT_STRIDE,
        'mean': [float(m) for m in mean], 'std': [float(s) for s in std],
        'pad_value': [int(round(255 * m)) for m in mean],
        'score_threshold': float(score_threshold), 'training_config': training_config or {},
        'epoch': int(epoch), 'metrics': metrics or {}, 'code_version': code_version()}


def load_detector_checkpoint(path, object_names=None):
    """Read a detector checkpoint and build its network (on the CPU, eval mode).

    Returns:
        (model CenterNet, meta dict, training dict or None).

    Raises:
        CheckpointError: missing file, not a detector checkpoint, weights that do not fit, or a
        name of `object_names` that is not among the checkpoint's classes.
    """
    path = str(path)
    data = read_checkpoint_file(path)
    meta = data.get('meta') if isinstance(data, dict) else None
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        found = meta.get('format') if isinstance(meta, dict) else None
        raise CheckpointError(f'{path}: not a pose_kp_ros detector checkpoint (format {found!r},'
                              f' expected {FORMAT!r})')
    if meta.get('format_version', 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: detector format_version {meta['format_version']} is "
                              f'newer than this code reads ({FORMAT_VERSION})')
    missing = [key for key in _META_KEYS if key not in meta]
    if missing or not isinstance(data.get('model'), dict):
        raise CheckpointError(f'{path}: detector checkpoint lacks {missing or ["model"]}')
    absent = [n for n in (object_names or []) if n not in meta['class_names']]
    if absent:
        raise CheckpointError(f"{path}: detector has no class {absent} (its classes: "
                              f"{meta['class_names']})")
    try:
        model = CenterNet(DetectorConfig.from_dict(meta['architecture']))
        model.load_state_dict(data['model'])
    except (ValueError, RuntimeError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise CheckpointError(f'{path}: weights do not fit the recorded detector architecture '
                              f'({first_line})') from None
    return model.eval(), meta, data.get('training')


# ------------------------------------------------------------------------------- inference


@dataclass
class Detection:
    """One detected object.

    Attributes:
        object_name: class name.
        box_xyxy: (4,) float64 box in image pixels (edges, pixel-centre convention).
        score: centre heatmap peak in [0, 1].
    """

    object_name: str
    box_xyxy: np.ndarray
    score: float


class ObjectDetector:
    """Whole image -> object boxes, with a trained CenterNet (see the module docstring)."""

    def __init__(self, model, meta, object_names=None, device='cpu', score_threshold=None,
                 max_detections=10):
        """Wrap a network and its checkpoint meta.

        object_names: report only these classes (None: all); score_threshold: None uses the
        checkpoint's; max_detections: at most this many boxes per image over all classes.
        """
        self.device = torch.device(device)
        self.model = fold_batch_norm(model.eval()).to(self.device)
        self.meta = meta
        self.class_names = list(meta['class_names'])
        self.object_names = list(object_names) if object_names else list(self.class_names)
        self.score_threshold = float(meta['score_threshold'] if score_threshold is None
                                     else score_threshold)
        self.max_detections = int(max_detections)
        self.input_width, self.input_height = meta['input_size']
        self.pad_value = meta['pad_value']
        self.mean = torch.tensor(meta['mean'], device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(meta['std'], device=self.device).view(1, 3, 1, 1) * 255
        self.wanted = torch.tensor([n in self.object_names for n in self.class_names],
                                   device=self.device)

    @classmethod
    def from_file(cls, path, object_names=None, device='cpu', score_threshold=None,
                  max_detections=10):
        """Load a detector checkpoint; CheckpointError (one line, naming the file) on failure."""
        model, meta, _ = load_detector_checkpoint(path, object_names)
        return cls(model, meta, object_names, device, score_threshold, max_detections)

    @torch.inference_mode()
    def detect(self, image_rgb, score_threshold=None):
        """Return the Detections in one (H, W, 3) uint8 RGB image, best score first.

        score_threshold: keep detections scoring at least this (None: self.score_threshold).
        """
        threshold = self.score_threshold if score_threshold is None else float(score_threshold)
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8 \
                or 0 in image_rgb.shape:
            raise ValueError(f'image_rgb: expected (H, W, 3) uint8, got {image_rgb.shape} '
                             f'{image_rgb.dtype}')
        height, width = image_rgb.shape[:2]
        canvas, image_to_input = letterbox(image_rgb, self.input_width, self.input_height,
                                           self.pad_value)
        pixels = torch.from_numpy(canvas).to(self.device).permute(2, 0, 1)[None].float()
        outputs = self.model((pixels - self.mean) / self.std)
        heatmap = outputs['heatmap'].sigmoid() * self.wanted[None, :, None, None]
        boxes, scores, classes = decode_outputs(heatmap, outputs['size'], outputs['offset'],
                                                self.max_detections)
        image_from_output = compose_affines(invert_affines(image_to_input),
                                            output_to_input_affine())
        boxes = map_boxes(image_from_output, boxes[0].double().cpu().numpy())
        boxes = np.clip(boxes, -0.5, [width - 0.5, height - 0.5, width - 0.5, height - 0.5])
        scores, classes = scores[0].cpu().numpy(), classes[0].cpu().numpy()
        return [Detection(self.class_names[c], box, float(s))
                for box, s, c in zip(boxes, scores, classes) if s >= threshold
                and box[2] > box[0] and box[3] > box[1]]
