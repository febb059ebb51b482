"""Result files as strict JSON: NaN and infinities (unmeasured, undefined) are written as null.

Python's json module writes NaN, which JSON does not have (browsers, jq and most parsers refuse
it). Every writer of results (pose-kp eval-lmo, the live evaluator, training metrics, exported
model metadata, the benchmarks) goes through `dumps` or `write`.
"""

import json
import math
from pathlib import Path

import numpy as np


def finite_or_none(data: object) -> object:
    """Return `data` with every non-finite float (also in dicts, lists, tuples) as None.

    numpy scalars and arrays become Python numbers and lists.
    """
    if isinstance(data, np.ndarray):
        data = data.tolist()
    elif isinstance(data, np.generic):
        data = data.item()
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(value) for value in data]
    return data


def dumps(data: object, indent: int | None = None) -> str:
    """Return `data` as strict JSON text (non-finite numbers as null)."""
    return json.dumps(finite_or_none(data), indent=indent, allow_nan=False)


def write(path: str | Path, data: object, indent: int = 1) -> None:
    """Write `data` to `path` as strict JSON text (non-finite numbers as null)."""
    Path(path).write_text(dumps(data, indent) + '\n')
