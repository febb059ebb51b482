"""The import rules of docs/architecture.md, read with ast from the source (function-level too)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'pose_kp_ros'

# package of pose_kp_ros -> the packages of pose_kp_ros it may import (besides itself); every
# package may import the top-level modules strict_json and __version__ (SHARED)
MAY_IMPORT = {
    'data': set(),
    'geometry': {'data'},
    'network': set(),
    'training': {'geometry', 'network', 'paths', 'rendering'},  # rendering: textures only
    'rendering': {'geometry', 'data', 'paths'},
    'pipeline': {'geometry', 'network'},
    'runtime': set(),
    'ros': {'geometry', 'data', 'paths', 'pipeline', 'runtime'},
    'tools': {'geometry', 'data', 'paths', 'launch_graph', 'network', 'pipeline', 'rendering',
              'training'},
}
SHARED = {'strict_json', '__version__'}
ROS_MODULES = {'rclpy', 'launch', 'launch_ros', 'sensor_msgs', 'geometry_msgs', 'vision_msgs',
               'tf2_msgs', 'visualization_msgs', 'diagnostic_msgs', 'std_msgs',
               'builtin_interfaces'}
ROS_ALLOWED = {'ros', 'launch_actions'}  # the node side and the launch-file helpers


def imports(path):
    """Yield (module, imported name or None) of every import statement in a Python file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.module, alias.name


def own_targets(module, name):
    """Return the pose_kp_ros packages or top-level modules an import reaches."""
    parts = module.split('.')
    if parts[0] != 'pose_kp_ros':
        return set()
    return {parts[1]} if len(parts) > 1 else {name}


def package_of(path):
    """Return the first part of a file's path inside pose_kp_ros (package or module name)."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


@pytest.mark.parametrize('package', sorted(MAY_IMPORT))
def test_each_package_imports_only_the_layers_below_it(package):
    allowed = MAY_IMPORT[package] | {package} | SHARED
    wrong = sorted({f'{path.relative_to(ROOT)}: {module}'
                    for path in (PACKAGE / package).rglob('*.py')
                    for module, name in imports(path)
                    if own_targets(module, name) - allowed})
    assert not wrong, f'{package} may import only {sorted(allowed)}:\n' + '\n'.join(wrong)


def test_training_takes_only_the_procedural_textures_from_rendering():
    """Training never needs the renderer (pyrender, OpenGL): only the image-only textures."""
    wrong = sorted(f'{path.relative_to(ROOT)}: {module}'
                   for path in (PACKAGE / 'training').rglob('*.py')
                   for module, name in imports(path) if 'rendering' in own_targets(module, name)
                   and module != 'pose_kp_ros.rendering.textures')
    assert not wrong, 'training imports more of rendering than textures:\n' + '\n'.join(wrong)


def test_only_the_ros_side_imports_ros():
    wrong = sorted(f'{path.relative_to(ROOT)}: {module}'
                   for path in PACKAGE.rglob('*.py') if package_of(path) not in ROS_ALLOWED
                   for module, _ in imports(path) if module.split('.')[0] in ROS_MODULES)
    assert not wrong, 'ROS imports outside pose_kp_ros.ros:\n' + '\n'.join(wrong)


def test_geometry_is_numpy_only():
    """Layer 1 computes in numpy; solve_pose takes and returns tensors without importing torch."""
    wrong = sorted(f'{path.relative_to(ROOT)}: {module}'
                   for path in (PACKAGE / 'geometry').rglob('*.py')
                   for module, _ in imports(path) if module.split('.')[0] == 'torch')
    assert not wrong, 'torch imported in pose_kp_ros.geometry:\n' + '\n'.join(wrong)


def test_benchmarks_and_scripts_use_public_names_only():
    files = [*(ROOT / 'benchmarks').glob('*.py'), *(ROOT / 'scripts').glob('*.py')]
    wrong = sorted(f'{path.relative_to(ROOT)}: {module}.{name}'
                   for path in files for module, name in imports(path)
                   if module.startswith('pose_kp_ros') and name and name.startswith('_')
                   and name != '__version__')
    assert not wrong, 'private names imported:\n' + '\n'.join(wrong)


def test_benchmarks_import_library_layers_only():
    """Benchmarks call the layers; a command they need runs as a process (python -m ...cli)."""
    wrong = sorted(f'{path.relative_to(ROOT)}: {module}'
                   for path in (ROOT / 'benchmarks').glob('*.py')
                   for module, name in imports(path) if 'tools' in own_targets(module, name))
    assert not wrong, 'benchmarks import pose_kp_ros.tools:\n' + '\n'.join(wrong)


def test_the_rules_name_every_package():
    packages = {p.name for p in PACKAGE.iterdir() if (p / '__init__.py').exists()}
    assert packages == set(MAY_IMPORT)
