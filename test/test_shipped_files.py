"""Shipped files name no folder of a development machine (paths are relative)."""

from pathlib import Path
import zipfile

SHIPPED = ('models', 'results', 'docs', 'config', 'objects', 'launch', 'pose_kp_ros',
           'benchmarks', 'scripts', 'README.md')
MACHINE_FOLDERS = (b'/work/', b'/home/', b'/root/', b'/Users/')


def contents(path):
    """Yield (name, bytes) of a file, and of each member when it is a zip archive (.pt, .pt2)."""
    yield str(path), path.read_bytes()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                yield f'{path}:{member}', archive.read(member)


def test_no_absolute_machine_paths_in_shipped_files(repo_root):
    found = []
    for top in SHIPPED:
        root = repo_root / top
        files = [root] if root.is_file() else sorted(p for p in root.rglob('*') if p.is_file())
        for path in files:
            if '__pycache__' in path.parts:
                continue
            for name, data in contents(path):
                hits = sorted({folder.decode() for folder in MACHINE_FOLDERS if folder in data})
                if hits:
                    found.append(f'{Path(name).relative_to(repo_root)}: {", ".join(hits)}')
    assert not found, 'absolute paths of a machine in shipped files:\n' + '\n'.join(found)
