"""The core's element codec (src/ir/tensor.c) against numpy and ml_dtypes: every float16 and every
bfloat16 bit pattern widened, and values between and around them narrowed, through the folding
kernel for Cast (`_core.fold_node`), which loads and stores with that codec. tests/c/test_tensor.c
checks the same conversions against an exact oracle under the sanitizers."""
import ml_dtypes
import numpy as np
import onnx
import pytest

from oxport import _core

# numpy warns when it narrows a value past float16's range to infinity, which is the point here
pytestmark = pytest.mark.filterwarnings(
    "ignore:overflow encountered in cast", "ignore:invalid value encountered in cast"
)

F16, BF16, F32, F64 = (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.FLOAT,
                       onnx.TensorProto.DOUBLE)


def _cast(values, src_code, to_code, out_dtype):
    (code, dims, data), = _core.fold_node("Cast", [("to", "int", to_code)],
                                          [(src_code, [values.size], values.tobytes())], 1)
    assert code == to_code and list(dims) == [values.size]
    return np.frombuffer(bytes(data), dtype=out_dtype)


def _same_bits_or_nan(got, want, what):
    """Equal bit for bit, except that where `want` is NaN `got` need only be a NaN."""
    nan = np.isnan(want.astype(np.float64))
    np.testing.assert_array_equal(np.isnan(got.astype(np.float64)), nan, err_msg=what)
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[want.itemsize]
    np.testing.assert_array_equal(got[~nan].view(bits), want[~nan].view(bits), err_msg=what)


def test_every_float16_widens_as_numpy():
    every = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    for to, dt in ((F64, np.float64), (F32, np.float32)):
        got = _cast(every, F16, to, dt)
        _same_bits_or_nan(got, every.astype(dt), f"float16 -> {dt.__name__}")


def test_float16_narrows_as_numpy():
    # every float16 value, the midpoints between neighbours (ties to even) and a hair either side
    finite = np.arange(0, 0x7c00, dtype=np.uint16).view(np.float16).astype(np.float64)
    mid = (finite[:-1] + finite[1:]) / 2
    doubles = np.concatenate([finite, mid, np.nextafter(mid, 0), np.nextafter(mid, np.inf),
                              [65504.0, 65519.99, 65520.0, 1e6, np.inf, np.nan, 2.0**-25, 2.0**-26]])
    doubles = np.concatenate([doubles, -doubles])
    _same_bits_or_nan(_cast(doubles, F64, F16, np.float16), doubles.astype(np.float16), "float64 -> float16")
    # from float32, whose own values are all exact in double
    floats = doubles.astype(np.float32)
    _same_bits_or_nan(_cast(floats, F32, F16, np.float16), floats.astype(np.float16), "float32 -> float16")


def test_bfloat16_both_ways_as_ml_dtypes():
    every = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(ml_dtypes.bfloat16)
    _same_bits_or_nan(_cast(every, BF16, F32, np.float32), every.astype(np.float32), "bfloat16 -> float32")
    finite = every[np.isfinite(every.astype(np.float32))].astype(np.float64)
    finite.sort()
    mid = (finite[:-1] + finite[1:]) / 2
    doubles = np.concatenate([finite, mid, np.nextafter(mid, 0), np.nextafter(mid, np.inf)])
    single = np.frombuffer(doubles.astype(np.float32).tobytes(), dtype=np.float32)
    # the codec rounds once from double; ml_dtypes from float32 (every float32 is exact in double)
    single = doubles.astype(np.float32)
    got = _cast(single, F32, BF16, np.uint16).view(ml_dtypes.bfloat16)
    _same_bits_or_nan(got, single.astype(ml_dtypes.bfloat16), "float32 -> bfloat16")
    # from double, one rounding: compare with the exactly nearest bfloat16 (ties to even)
    got = _cast(doubles, F64, BF16, np.uint16).view(ml_dtypes.bfloat16)
    lo = np.searchsorted(finite, doubles, side="right") - 1
    lo = np.clip(lo, 0, len(finite) - 2)
    a_, b_ = finite[lo], finite[lo + 1]
    a_bits = a_.astype(np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)
    pick_b = (doubles - a_ > b_ - doubles) | ((doubles - a_ == b_ - doubles) & (a_bits % 2 == 1) & (a_ != b_))
    nearest = np.copysign(np.where(pick_b, b_, a_), doubles).astype(np.float32).astype(ml_dtypes.bfloat16)
    _same_bits_or_nan(got, nearest, "float64 -> bfloat16")
