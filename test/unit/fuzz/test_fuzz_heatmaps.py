"""Fuzz heatmap decoding: flat, NaN, inf, all-zero, negative and odd-shaped maps."""

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import torch

from pose_kp_ros.network.heatmaps import decode_heatmaps

BOUNDARY = 'heatmap decoding'
specials = st.sampled_from([0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-30])


@st.composite
def heatmaps(draw):
    """Return (B, N, H, W) maps: random, flat, or with NaN / inf / negative values injected."""
    shape = (draw(st.integers(0, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 9)),
             draw(st.integers(1, 9)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(['random', 'flat', 'negative', 'peak']))
    if kind == 'flat':
        maps = np.full(shape, draw(specials | st.floats(-2.0, 2.0)))
    elif kind == 'negative':
        maps = -rng.uniform(0.0, 5.0, shape)
    elif kind == 'peak':
        maps = np.zeros(shape)
        maps[..., rng.integers(shape[2]), rng.integers(shape[3])] = draw(st.floats(0.01, 3.0))
    else:
        maps = rng.uniform(-0.5, 1.5, shape)
    poisoned = draw(st.integers(0, 4)) if shape[0] else 0
    for _ in range(poisoned):  # single pixels
        maps[tuple(rng.integers(s) for s in shape)] = draw(specials)
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.float64]))
    return torch.as_tensor(maps).to(dtype), kind if not poisoned else f'poisoned {kind}'


@settings(max_examples=400, deadline=None)
@given(case=heatmaps())
def test_decoded_keypoints_are_finite_inside_the_map_with_confidence_in_0_1(case):
    maps, kind = case
    batch, count, height, width = maps.shape
    keypoints, confidence = decode_heatmaps(maps)
    assert keypoints.shape == (batch, count, 2) and confidence.shape == (batch, count)
    assert torch.isfinite(keypoints).all() and torch.isfinite(confidence).all()
    assert ((confidence >= 0) & (confidence <= 1)).all()
    assert (keypoints[..., 0] >= -0.5).all() and (keypoints[..., 0] <= width - 0.5).all()
    assert (keypoints[..., 1] >= -0.5).all() and (keypoints[..., 1] <= height - 0.5).all()
    usable = torch.nan_to_num(maps.float(), nan=0.0, posinf=0.0, neginf=0.0).flatten(-2)
    no_contrast = usable.max(-1).values <= usable.min(-1).values
    assert (confidence[no_contrast] == 0).all()  # flat, all-zero or all-poisoned maps
    assert (confidence[usable.max(-1).values <= 0] == 0).all()  # nothing above zero
    if kind == 'peak':  # a single positive pixel is found exactly
        peak = usable.argmax(-1)
        expected = torch.stack([peak % width, peak // width], -1).float()
        found = usable.max(-1).values > 0
        assert torch.equal(keypoints[found], expected[found])
