"""Summary statistics over cases: mean, spread, median and quartiles, NaN-aware."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def describe(values: Sequence[float | None]) -> dict[str, float]:
    """Mean, std, median, quartiles and IQR of the finite values.

    Undefined values (None, NaN, infinities: e.g. HD95 when one mask is empty) are left out of
    every statistic and counted in ``n_undefined``, so a reader sees how many cases a mean hides.

    Args:
        values: one value per case.

    Returns:
        ``{"mean", "std", "median", "q1", "q3", "iqr", "n", "n_undefined"}``; NaN statistics
        when no value is finite.
    """
    array = np.asarray([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    finite = array[np.isfinite(array)]
    undefined = int(array.size - finite.size)
    if finite.size == 0:
        return {"mean": math.nan, "std": math.nan, "median": math.nan, "q1": math.nan, "q3": math.nan,
                "iqr": math.nan, "n": 0, "n_undefined": undefined}
    q1, median, q3 = (float(q) for q in np.percentile(finite, [25.0, 50.0, 75.0]))
    return {"mean": float(finite.mean()), "std": float(finite.std()), "median": median, "q1": q1, "q3": q3,
            "iqr": q3 - q1, "n": int(finite.size), "n_undefined": undefined}

