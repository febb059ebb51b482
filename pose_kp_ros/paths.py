"""Where the package's data files (config/, models/, objects/, launch/) and executables are.

Installed with colcon, they live in share/pose_kp_ros (found through the ament index); in a
source checkout or an editable install, next to the Python package. Both are tried, in that order.
"""

import os
from pathlib import Path
import shutil
import sys

PACKAGE = 'pose_kp_ros'
SOURCE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PIPELINE_CONFIG = 'models/driller/pipeline.yaml'
"""The shipped pipeline config (the default model), relative to the package data."""


def share_dirs() -> list[Path]:
    """Return the candidate data folders, most specific first."""
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory
        dirs.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # not installed through ament (source checkout, pip -e)
        pass
    dirs.append(SOURCE_ROOT)
    return dirs


def data_path(*parts: str) -> Path:
    """Return the first existing `<share>/<parts...>`, else the (maybe missing) source path."""
    for root in share_dirs():
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    return SOURCE_ROOT.joinpath(*parts)


def default_pipeline_config() -> str:
    """Return the path of the shipped pipeline config (DEFAULT_PIPELINE_CONFIG)."""
    return str(data_path(*DEFAULT_PIPELINE_CONFIG.split('/')))


def portable_path(path: str | Path, start: str | Path | None = None) -> str:
    """Return `path` relative to `start`, as results and model files record paths.

    Never an absolute path of this machine. Without `start`: relative to the repository (or the
    installed share/pose_kp_ros) when the file lies inside it, else to the working directory.
    '..' is taken lexically (symlinks kept).
    """
    path = os.path.abspath(path)
    if start is None:
        for root in share_dirs():
            root = os.path.abspath(root)
            if os.path.commonpath([path, root]) == root:
                return os.path.relpath(path, root)
        start = os.curdir
    return os.path.relpath(path, os.path.abspath(start))


def executable_path(name: str) -> str:
    """Return the installed executable `name` (colcon lib/pose_kp_ros, or next to python)."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    try:
        from ament_index_python.packages import get_package_prefix
        candidate = Path(get_package_prefix('pose_kp_ros')) / 'lib' / 'pose_kp_ros' / name
        if candidate.exists():
            return str(candidate)
    except Exception:  # not installed through ament
        pass
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f'executable {name} not found (is pose_kp_ros installed?)')
    return found
