"""Procedural background and table textures: every family, and scenes that use them."""

from dataclasses import replace
import json

import cv2
import numpy as np
import pytest

from pose_kp_ros.rendering.dataset_writer import render_dataset
from pose_kp_ros.rendering.settings import RenderSettings
from pose_kp_ros.rendering.textures import TEXTURE_FAMILIES, procedural_texture

OBJECTS = ('ape', 'holepuncher')
SIZE = (320, 240)
K = np.array([[286.0, 0.0, 159.5], [0.0, 286.0, 119.5], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize('family', TEXTURE_FAMILIES)
def test_every_family_draws_a_reproducible_pattern_with_edges(family):
    image = procedural_texture(np.random.default_rng(7), 160, 120, family)
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    again = procedural_texture(np.random.default_rng(7), 160, 120, family)
    np.testing.assert_array_equal(image, again)
    other = procedural_texture(np.random.default_rng(8), 160, 120, family)
    assert not np.array_equal(image, other)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    assert grey.std() > 3.0  # a pattern, not a flat colour


def test_marker_grids_are_dark_ink_on_light_paper():
    for seed in range(5):
        grey = cv2.cvtColor(procedural_texture(np.random.default_rng(seed), 320, 240,
                                               'marker_grid'), cv2.COLOR_RGB2GRAY)
        # ink <= 80 and paper >= 170 before the light ramp (at most +-40% across the image)
        assert (grey < 90).mean() > 0.1 and (grey > 110).mean() > 0.1


def test_an_unknown_family_is_refused():
    with pytest.raises(ValueError, match='unknown texture family'):
        procedural_texture(np.random.default_rng(0), 32, 24, 'tartan')


def test_texture_probability_is_checked():
    with pytest.raises(ValueError, match='texture_probability must be in'):
        RenderSettings(texture_probability=-0.1)
    assert RenderSettings().texture_probability == 0.0  # datasets render as they always did


def test_textures_change_the_background_and_table_never_a_label(tmp_path, repo_root,
                                                              renderer_available, driller_uri):
    """The same scenes with photos and with patterns: labels equal, the surroundings differ."""
    settings = RenderSettings(objects_per_scene=(2, 2), upright_axis=(0, 0, 1),
                              upright_probability=1.0, table_probability=1.0,
                              distance_m=(0.5, 0.8), centre_outside=0.0, distractor_count=(0, 0))
    folders = {}
    for kind, probability in (('photos', 0.0), ('patterns', 1.0)):
        folders[kind] = tmp_path / kind
        assert render_dataset([repo_root / 'objects' / f'{name}.yaml' for name in OBJECTS],
                              folders[kind], 2, seed=4, size=SIZE, K=K,
                              settings=replace(settings, texture_probability=probability),
                              progress=False) == 2
    lines = (folders['photos'] / 'annotations.jsonl').read_text()
    assert lines == (folders['patterns'] / 'annotations.jsonl').read_text()
    for line in map(json.loads, lines.splitlines()):
        photos, patterns = (cv2.imread(str(folders[kind] / line['image'])).astype(np.float64)
                            for kind in ('photos', 'patterns'))
        mask = cv2.imread(str(folders['photos'] / line['instances'][0]['mask']),
                          cv2.IMREAD_UNCHANGED)
        assert np.abs(photos - patterns)[mask == 0].mean() > 20.0
