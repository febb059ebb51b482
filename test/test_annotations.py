"""Public functions and methods carry type annotations (read with ast, the package not imported).

Public: a name not starting with '_'; ``__init__`` counts when it takes arguments beyond self.
Every parameter but self/cls and the return are annotated. ANNOTATED lists every package and
module of pose_kp_ros (a test checks that none is missing); NOT_YET holds files still exempt.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'pose_kp_ros'

# packages (folders) and modules (.py files) of pose_kp_ros whose public functions are annotated:
# all of them
ANNOTATED = [
    'geometry',
    'network',
    'pipeline',
    'runtime',
    'rendering',
    'data',
    'training',
    'ros',
    'tools',
    '__init__.py',
    'launch_actions.py',
    'launch_graph.py',
    'paths.py',
    'strict_json.py',
]
# files inside the packages above that are not done yet (none)
NOT_YET: set[str] = set()


def files_of(entry):
    """Return the Python files of one ANNOTATED entry, less those in NOT_YET."""
    path = PACKAGE / entry
    files = sorted(path.rglob('*.py')) if path.is_dir() else [path]
    return [f for f in files if f.relative_to(PACKAGE).as_posix() not in NOT_YET]


def is_public(function):
    """Return whether a function or method is public (``__init__`` with arguments included)."""
    if function.name == '__init__':
        args = function.args
        return len(args.posonlyargs + args.args) > 1 or bool(
            args.kwonlyargs or args.vararg or args.kwarg)
    return not function.name.startswith('_')


def functions(tree):
    """Yield (qualified name, def node) of every function, methods and nested functions included.

    Functions nested inside another function are not public API and are skipped.
    """
    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from walk(child, f'{prefix}{child.name}.')
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f'{prefix}{child.name}', child
    yield from walk(tree, '')


def missing(function):
    """Return the names of a function's unannotated parameters (and 'return')."""
    args = function.args
    positional = args.posonlyargs + args.args
    skip_first = bool(positional) and positional[0].arg in ('self', 'cls')
    params = positional[1:] if skip_first else positional
    params = [*params, *args.kwonlyargs, *(a for a in (args.vararg, args.kwarg) if a)]
    names = [a.arg for a in params if a.annotation is None]
    if function.returns is None:
        names.append('return')
    return names


def unannotated(path):
    """Yield 'file:line name(missing, ...)' for each public function of a file missing some."""
    tree = ast.parse(path.read_text(), str(path))
    for name, function in functions(tree):
        if not is_public(function):
            continue
        absent = missing(function)
        if absent:
            yield (f'{path.relative_to(ROOT)}:{function.lineno} {name}'
                   f'({", ".join(absent)})')


@pytest.mark.parametrize('entry', ANNOTATED)
def test_public_functions_are_annotated(entry):
    files = files_of(entry)
    assert files, f'pose_kp_ros/{entry} holds no Python files'
    wrong = [line for path in files for line in unannotated(path)]
    assert not wrong, 'public functions without annotations:\n' + '\n'.join(wrong)


def test_the_check_sees_a_missing_annotation():
    source = ('def f(x: int, y) -> int: ...\n'
              'def g(x: int) -> int: ...\n'
              'def _h(x): ...\n'
              'class A:\n'
              '    def __init__(self): ...\n'
              '    def m(self, a: int): ...\n'
              '    @classmethod\n'
              '    def c(cls, *a: int, **k: int) -> None: ...\n')
    found = {name: missing(f) for name, f in functions(ast.parse(source)) if is_public(f)}
    assert found == {'f': ['y'], 'g': [], 'A.m': ['return'], 'A.c': []}


def test_the_listed_entries_exist():
    assert all((PACKAGE / entry).exists() for entry in [*ANNOTATED, *NOT_YET])


def test_every_package_and_module_is_listed():
    parts = {p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / '__init__.py').exists()) or p.suffix == '.py'}
    assert parts == set(ANNOTATED)
