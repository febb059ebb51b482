"""The numba modules keep the rule their cache depends on (docs/solver.md).

numba renews a compiled function's on-disk cache when its own file changes, not when a
function it calls from another file does: a compiled function that called into another module
would keep running that module's old code after an upgrade. So every call inside a compiled
function goes to a compiled function of the same module, a builtin, or numpy / math.
"""

import ast
import builtins
from pathlib import Path

import pytest

GEOMETRY = Path(__file__).resolve().parents[3] / 'pose_kp_ros' / 'geometry'
COMPILED_MODULES = ('solver/compiled_inputs.py', 'solver/compiled_fit.py', 'compiled_contour.py')


def compiled_functions(tree):
    """Return {name: FunctionDef} of the functions decorated with COMPILED."""
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(isinstance(d, ast.Name) and d.id == 'COMPILED' for d in node.decorator_list)}


@pytest.mark.parametrize('module', COMPILED_MODULES)
def test_compiled_functions_call_only_their_own_module_builtins_numpy_and_math(module):
    tree = ast.parse((GEOMETRY / module).read_text())
    functions = compiled_functions(tree)
    imported = {(alias.asname or alias.name).split('.')[0] for stmt in tree.body
                if isinstance(stmt, (ast.Import, ast.ImportFrom)) for alias in stmt.names}
    assert len(functions) >= 3, f'{module}: expected its compiled functions'
    wrong = []
    for name, function in functions.items():
        for node in ast.walk(function):
            if not isinstance(node, ast.Call):
                continue
            target = node.func
            if isinstance(target, ast.Name):
                if target.id not in functions and not hasattr(builtins, target.id):
                    wrong.append(f'{name} calls {target.id}')
            elif isinstance(target, ast.Attribute):
                root = target
                while isinstance(root, (ast.Attribute, ast.Subscript)):
                    root = root.value
                # np.x(...) and math.x(...), or a method of a local array (H[b].copy(), ...);
                # never a function reached through another imported module or name.
                if isinstance(root, ast.Name) and root.id in imported - {'np', 'math'}:
                    wrong.append(f'{name} calls {ast.unparse(target)}')
    assert not wrong, f'{module}: ' + '; '.join(wrong)


def test_compile_solver_leaves_a_working_solver():
    import numpy as np

    from pose_kp_ros.geometry.camera import project_object_points
    from pose_kp_ros.geometry.solver import compile_solver, solve_pose
    from pose_kp_ros.geometry.synthetic import LMO_K, random_keypoint_model

    compile_solver()
    model = random_keypoint_model(np.random.default_rng(3), 8)
    t = np.array([0.02, -0.01, 0.8])
    uv = project_object_points(model.keypoints, np.eye(3), t, LMO_K)
    result = solve_pose(uv, None, LMO_K, model)
    assert result.valid
    np.testing.assert_allclose(result.t, t, atol=1e-6)
