"""Capture: torch.export, then decomposition of only what the C core does not lower natively."""
from __future__ import annotations

import torch
from torch.export import ExportedProgram

from . import _core
from ._errors import CaptureError
from ._walk import target_name


def capture(model, args: tuple, kwargs: dict | None, dynamic_shapes=None) -> tuple[ExportedProgram, str]:
    """Returns the ExportedProgram and the strategy that produced it."""
    if isinstance(model, ExportedProgram):
        return model, "given"
    try:
        ep = torch.export.export(model, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as e:
        raise CaptureError(f"torch.export.export(strict=False) failed: {type(e).__name__}: {e}") from e
    return ep, "torch.export(strict=False)"


def needs_decomposition(ep: ExportedProgram, opset: int, custom=frozenset()) -> list[str]:
    """The overloads in the graph that the C core does not lower and no custom translation
    covers (or that mutate: they need functionalization). Empty means the re-trace of
    run_decompositions can be skipped."""
    supported = _core.supported_targets(opset) | set(custom)
    missing = []
    for node in ep.graph.nodes:
        if node.op != "call_function" or not hasattr(node.target, "_schema"):
            continue
        name = target_name(node.target)
        if name not in supported or node.target._schema.is_mutable:
            missing.append(name)
    return sorted(set(missing))


def decompose(ep: ExportedProgram, opset: int, custom=frozenset()) -> ExportedProgram:
    """run_decompositions with PyTorch's core-ATen table minus every op oxport lowers natively
    or has a custom translation for."""
    supported = _core.supported_targets(opset) | set(custom)
    table = torch.export.default_decompositions()
    for op in list(table.keys()):
        if target_name(op) in supported:
            del table[op]
    return ep.run_decompositions(table)
