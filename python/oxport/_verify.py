"""verify=True: the exported model run in ONNX Runtime against eager PyTorch on the example
inputs."""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch.utils import _pytree

from ._errors import OnnxExporterWarning

if TYPE_CHECKING:
    import onnx


class _Runnable(Protocol):
    """What verify needs of an ONNXProgram (which holds the VerificationInfo it returns, so this
    module does not import it)."""

    @property
    def model_proto(self) -> onnx.ModelProto: ...

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]: ...


@dataclass
class VerificationInfo:
    """One output: how far ONNX Runtime is from eager."""
    name: str
    max_abs_diff: float
    max_rel_diff: float
    max_abs_expected: float
    expected_dtype: torch.dtype
    actual_dtype: torch.dtype
    shape_matches: bool

    def ok(self, atol: float, rtol: float) -> bool:
        return self.shape_matches and self.expected_dtype == self.actual_dtype and \
            self.max_abs_diff <= atol + rtol * self.max_abs_expected


def verify(program: _Runnable, model: torch.nn.Module | torch.export.ExportedProgram,
           args: tuple[Any, ...], kwargs: Mapping[str, Any], *, atol: float = 1e-4,
           rtol: float = 1e-3) -> list[VerificationInfo]:
    """Runs both and compares output by output; warns (OnnxExporterWarning) for every output
    beyond atol + rtol * max|expected|."""
    runner = model.module() if isinstance(model, torch.export.ExportedProgram) else model
    with torch.no_grad():
        expected = runner(*args, **kwargs)
    expected = [t for t in _pytree.tree_leaves(expected) if isinstance(t, torch.Tensor)]
    actual = program(*args, **kwargs)
    names = [o.name for o in program.model_proto.graph.output]
    infos = []
    for name, e, a in zip(names, expected, actual):
        shape_ok = tuple(e.shape) == tuple(a.shape)
        if shape_ok and e.numel():
            ef, af = e.detach().double(), a.double()
            diff = (ef - af).abs()
            abs_diff = diff.max().item()
            rel_diff = (diff / ef.abs().clamp_min(1e-12)).max().item()
            scale = ef.abs().max().item()
        else:
            abs_diff = rel_diff = 0.0 if shape_ok else float("inf")
            scale = 1.0
        info = VerificationInfo(name, abs_diff, rel_diff, scale, e.dtype, a.dtype, shape_ok)
        infos.append(info)
        if not info.ok(atol, rtol):
            warnings.warn(f"verify: output {name!r} differs from eager: max abs diff {abs_diff:.3e}, "
                          f"max rel diff {rel_diff:.3e}, dtype {a.dtype} vs {e.dtype}, shape "
                          f"{tuple(a.shape)} vs {tuple(e.shape)} (atol {atol}, rtol {rtol})",
                          OnnxExporterWarning, stacklevel=3)
    return infos
