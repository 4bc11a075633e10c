"""Capture: torch.export, then decomposition of only what the C core does not lower natively."""
from __future__ import annotations

import torch
from torch.export import ExportedProgram

from . import _core
from ._errors import CaptureError
from ._walk import target_name


def _nonstrict(model, args, kwargs, dynamic_shapes):
    return torch.export.export(model, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes, strict=False)


def _strict(model, args, kwargs, dynamic_shapes):
    return torch.export.export(model, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes, strict=True)


def _draft(model, args, kwargs, dynamic_shapes):
    return torch.export.draft_export(model, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes)


STRATEGIES = (("torch.export(strict=False)", _nonstrict), ("torch.export(strict=True)", _strict),
              ("torch.export.draft_export", _draft))


def capture(model, args: tuple, kwargs: dict | None, dynamic_shapes=None,
            attempts: list | None = None) -> tuple[ExportedProgram, str]:
    """Tries each strategy in turn (non-strict, strict, draft_export). Returns the ExportedProgram
    and the strategy that produced it; every failure is appended to `attempts` as
    (strategy, error text) and kept in the CaptureError when all fail."""
    if isinstance(model, ExportedProgram):
        return model, "given"
    failures = attempts if attempts is not None else []
    for name, strategy in STRATEGIES:
        try:
            return strategy(model, args, kwargs, dynamic_shapes), name
        except Exception as e:   # each strategy's failure is data for the next and the report
            failures.append((name, f"{type(e).__name__}: {e}"))
    lines = "\n".join(f"  - {name}: {text.splitlines()[0] if text else ''}" for name, text in failures)
    raise CaptureError(f"torch.export could not capture the model; every strategy failed:\n{lines}")


def needs_decomposition(ep: ExportedProgram, opset: int, custom=frozenset()) -> list[str]:
    """The overloads in the graph that the C core does not lower and no custom translation
    covers, but that PyTorch can decompose (or that mutate: they need functionalization). Empty
    means the re-trace of run_decompositions can be skipped: it would change nothing oxport can
    use (an op with no decomposition, e.g. a custom op, is reported as unsupported instead)."""
    supported = _core.supported_targets(opset) | set(custom)
    table = None
    missing = set()
    for node in ep.graph.nodes:
        if node.op != "call_function" or not hasattr(node.target, "_schema"):
            continue
        name = target_name(node.target)
        if node.target._schema.is_mutable:
            missing.add(name)
        elif name not in supported and name not in missing:
            if table is None:
                table = torch.export.default_decompositions()
            if node.target in table or node.target.has_kernel_for_dispatch_key(
                    torch._C.DispatchKey.CompositeImplicitAutograd):
                missing.add(name)
    return sorted(missing)


def decompose(ep: ExportedProgram, opset: int, custom=frozenset()) -> ExportedProgram:
    """run_decompositions with PyTorch's core-ATen table minus every op oxport lowers natively
    or has a custom translation for."""
    supported = _core.supported_targets(opset) | set(custom)
    table = torch.export.default_decompositions()
    for op in list(table.keys()):
        if target_name(op) in supported:
            del table[op]
    return ep.run_decompositions(table)
