"""Reading results/ JSON and formatting numbers for the pages the benchmarks write."""

import json
import math


def read(path):
    """Return the parsed JSON at path, or None when it does not exist."""
    return json.loads(path.read_text()) if path.is_file() else None


def number(value, digits=1, scale=1.0, suffix=''):
    """Format a float (NaN/None as '-')."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return f'{value * scale:.{digits}f}{suffix}'
