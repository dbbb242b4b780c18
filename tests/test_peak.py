"""The peak-rate probe (codegen.peak) computes what its loop says: a probe whose work was
optimised away, or done in fewer operations, would report a rate it never reached."""

import numpy as np
import pytest

import peak


def _expected(dtype, count):
    """Lane 0 of the sum of the accumulators after ``count`` updates, in numpy: the product by
    0.5 is exact, so one rounding per update, as in a fused multiply-add."""
    accumulators = np.arange(peak.ACCUMULATORS, dtype=dtype)
    for _ in range(count):
        accumulators = accumulators * dtype(peak.SCALE) + dtype(peak.STEP)
    total = accumulators[0]
    for value in accumulators[1:]:
        total = dtype(total + value)
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("count", [1, 2, 7, 60])
def test_the_probe_computes_every_update(dtype, count):
    function, lanes = peak.probe(np.dtype(dtype).name)
    assert lanes * np.dtype(dtype).itemsize in (16, 32, 64)
    out = np.full(1, np.nan, dtype)
    function(count, out.ctypes.data)
    assert out[0] == _expected(dtype, count)

