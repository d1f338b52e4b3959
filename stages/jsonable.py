"""JSON that strict parsers accept: a metric that does not apply (NaN) or overflows becomes null."""

from __future__ import annotations

import math


def finite(value: object) -> object:
    """`value` with every non-finite float, however deeply nested, replaced by None (JSON.parse
    and `json.dumps(allow_nan=False)` reject NaN and Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
