"""Values made fit for strict JSON (KFP metadata, registry fields, reports), which refuse NaN and infinities."""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None, recursively; NumPy scalars as Python numbers; keys as text.

    NumPy is not imported: its scalars are recognised by their module (a float64 is also a Python float).
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()  # np.floating -> float, np.integer -> int, np.bool_ -> bool
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    return value
