"""The result files in the repository are what their readers can parse: strict JSON."""

import json


def refuse(constant):
    """Reject NaN and Infinity while parsing (Python's json writes them; JSON has no such)."""
    raise ValueError(f'{constant} is not JSON')


def test_result_json_files_hold_no_nan(repo_root):
    bad = []
    for path in sorted((repo_root / 'results').rglob('*.json')):
        try:
            json.loads(path.read_text(), parse_constant=refuse)
        except ValueError as error:
            bad.append(f'{path.relative_to(repo_root)}: {error}')
    assert not bad, 'not strict JSON:\n' + '\n'.join(bad)
