"""torch dtypes ↔ ONNX TensorProto.DataType codes (the codes the C core uses)."""
from __future__ import annotations

import torch

TORCH_TO_ONNX: dict[torch.dtype, int] = {
    torch.float32: 1, torch.uint8: 2, torch.int8: 3, torch.uint16: 4, torch.int16: 5,
    torch.int32: 6, torch.int64: 7, torch.bool: 9, torch.float16: 10, torch.float64: 11,
    torch.uint32: 12, torch.uint64: 13, torch.complex64: 14, torch.complex128: 15,
    torch.bfloat16: 16,
}
ONNX_TO_TORCH: dict[int, torch.dtype] = {v: k for k, v in TORCH_TO_ONNX.items()}


def onnx_dtype(dtype: torch.dtype, where: str) -> int:
    try:
        return TORCH_TO_ONNX[dtype]
    except KeyError:
        raise TypeError(f"{where}: dtype {dtype} has no ONNX equivalent") from None
