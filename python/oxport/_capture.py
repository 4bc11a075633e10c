"""Capture: torch.export, then decomposition of only what the C core does not lower natively."""
from __future__ import annotations

import operator
import os
import re
import traceback
import warnings
from collections.abc import Callable, Collection
from typing import Any, cast

import torch
from torch.export import ExportedProgram
from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

from . import _core
from ._errors import CaptureError, OnnxExporterWarning
from ._target import target_name


def _nonstrict(model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None,
               dynamic_shapes: Any) -> ExportedProgram:
    return torch.export.export(model, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes, strict=False)


def _strict(model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None,
            dynamic_shapes: Any) -> ExportedProgram:
    return torch.export.export(model, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes, strict=True)


def _draft(model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None,
           dynamic_shapes: Any) -> ExportedProgram:
    return torch.export.draft_export(model, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes)


_Strategy = Callable[[torch.nn.Module, tuple[Any, ...], dict[str, Any] | None, Any], ExportedProgram]

DRAFT_EXPORT = "torch.export.draft_export"
STRATEGIES: tuple[tuple[str, _Strategy], ...] = (
    ("torch.export(strict=False)", _nonstrict), ("torch.export(strict=True)", _strict),
    (DRAFT_EXPORT, _draft))

# torch.onnx enables draft_export with this environment variable (torch/onnx/_flags.py); oxport
# reads it when export(draft_export=None), and at each export, not at import.
DRAFT_EXPORT_ENV = "TORCH_ONNX_ENABLE_DRAFT_EXPORT"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# torch.export's closing advice names its own API; oxport's hint replaces it
_TORCH_DRAFT_HINT = re.compile(
    r"\s*The error above occurred when calling torch\.export\.export\..*?draft_export\(\)`\.", re.S)
_DRAFT_HINT = ("oxport.export(..., draft_export=True) exports it anyway, unsoundly, with a warning "
               "that says what it assumed.")


def draft_export_requested(draft_export: bool | None) -> bool:
    """draft_export as given, or (None) whether TORCH_ONNX_ENABLE_DRAFT_EXPORT=1, as torch.onnx."""
    if draft_export is None:
        return os.environ.get(DRAFT_EXPORT_ENV) == "1"
    if not isinstance(draft_export, bool):
        raise TypeError(f"draft_export must be a bool or None, got {type(draft_export).__name__}")
    return draft_export


def capture(model: torch.nn.Module | ExportedProgram, args: tuple[Any, ...],
            kwargs: dict[str, Any] | None, dynamic_shapes: Any = None,
            attempts: list[tuple[str, str]] | None = None,
            draft_export: bool = False) -> tuple[ExportedProgram, str]:
    """Tries non-strict then strict torch.export, and draft_export only when `draft_export` is
    true: its program holds whatever the example inputs did (a data-dependent branch taken, a
    dynamic dim fixed), so it is used only when asked for, and then warns what it assumed.
    Returns the ExportedProgram and the strategy that produced it; every failure is appended to
    `attempts` as (strategy, error text). When all fail, a CaptureError says why: a Python
    branch on tensor data (with its source line), a dynamic dim the model fixes, or each
    strategy's error."""
    if isinstance(model, ExportedProgram):
        return model, "given"
    failures = attempts if attempts is not None else []
    errors: list[BaseException] = []
    for name, strategy in STRATEGIES:
        if name == DRAFT_EXPORT and not draft_export:
            continue
        try:
            ep = strategy(model, args, kwargs, dynamic_shapes)
        except Exception as e:   # each strategy's failure is data for the next and the report
            failures.append((name, f"{type(e).__name__}: {e}"))
            errors.append(e)
            continue
        if name == DRAFT_EXPORT:
            _warn_draft(ep, failures)
        return ep, name
    lines = "\n".join(f"  - {name}: {text.splitlines()[0] if text else ''}" for name, text in failures)
    reason = _explain(errors)
    if reason is not None:
        raise CaptureError(f"{reason}\nThe capture strategies tried:\n{lines}")
    hint = "" if draft_export else f"\n{_DRAFT_HINT}"
    raise CaptureError(f"torch.export could not capture the model; every strategy failed:\n{lines}{hint}")


def _warn_draft(ep: ExportedProgram, failures: list[tuple[str, str]]) -> None:
    """The loud warning of a draft_export capture: what torch.export refused, what draft_export
    assumed instead (its report, whole)."""
    report = getattr(ep, "_report", None)
    found = list(getattr(report, "failures", []) or [])
    assumed = _ANSI.sub("", str(report)).strip() if found else \
        "draft_export reported no assumption; the strict captures failed for the reasons above."
    refused = "\n".join(f"  - {name}: {text.splitlines()[0] if text else ''}" for name, text in failures)
    warnings.warn(
        f"draft_export=True: the model was captured with torch.export.draft_export, which is NOT "
        f"sound: the ONNX model does what the example inputs did, and may be wrong for other "
        f"inputs (a data-dependent branch fixed to the one taken, a dynamic dim fixed to its "
        f"example size).\ntorch.export refused it:\n{refused}\nWhat draft_export assumed:\n{assumed}",
        OnnxExporterWarning, stacklevel=4)


def _user_frame(e: BaseException) -> tuple[str, str, str] | None:
    """(file, line, code) of the user's source line where a capture failed, from torch's text
    ("The following call raised this error:" in non-strict, "# File ..., code:" in strict), or
    else the innermost traceback frame outside torch."""
    text = str(e)
    m = re.search(r'The following call raised this error:\n\s*File "([^"]+)", line (\d+), in \S+\n\s*(.+)', text)
    if m is None:
        m = re.search(r'# File "([^"]+)", line (\d+), in \S+, code: (.+)', text)
    if m is not None:
        return m.group(1), m.group(2), m.group(3).strip()
    torch_dir = os.path.dirname(torch.__file__)
    found = None
    for frame in traceback.extract_tb(e.__traceback__):
        if not frame.filename.startswith(torch_dir) and not frame.filename.startswith(os.path.dirname(__file__)):
            found = (frame.filename, str(frame.lineno), (frame.line or "").strip())
    return found


def _explain(errors: list[BaseException]) -> str | None:
    """Why the capture failed, for the two failures the user must fix in the model or the
    dynamic_shapes: a dim declared dynamic that the model fixes, a Python branch on data."""
    for e in errors:
        text = _ANSI.sub("", str(e))
        if "Constraints violated" in text:
            dims = re.findall(r"L\['([^']+)'\]((?:\[[^\]]+\])*)\.size\(\)\[(\d+)\]", text)
            named = ", ".join(dict.fromkeys(f"axis {axis} of input {name!r}{path}" for name, path, axis in dims))
            explanation = _TORCH_DRAFT_HINT.sub("", text).strip()
            return (f"dynamic_shapes: {named or 'a dim'} is declared dynamic, but the model fixes it. "
                    f"torch.export explains:\n{explanation}\nDeclare that axis static (an int, None "
                    f"or Dim.STATIC), or Dim.AUTO to let torch.export decide. {_DRAFT_HINT}")
    for e in errors:
        text = _ANSI.sub("", str(e))
        data_dependent = (isinstance(e, GuardOnDataDependentSymNode) or "Data-dependent branching" in text
                          or "Could not guard on data-dependent expression" in text)
        if data_dependent:
            frame = _user_frame(e)
            where = f'File "{frame[0]}", line {frame[1]}: `{frame[2]}`' if frame else "a line torch.export did not name"
            first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
            return (f"the model's Python code depends on a tensor's value at {where}. torch.export "
                    f"fixes such a choice at capture, so the ONNX model would do what the example "
                    f"inputs did for every input. A branch on data must be written with torch.cond "
                    f"(torch.where for an elementwise choice). torch.export: {first}\n{_DRAFT_HINT}")
    return None


def _aliases(node: torch.fx.Node) -> bool:
    """Whether node's value may share storage with another value: a placeholder (input, weight,
    buffer), a view (its schema returns an alias), or an element of a view op's tuple."""
    if node.op != "call_function":
        return True
    target = node.target
    if target is operator.getitem:
        return _aliases(cast(torch.fx.Node, node.args[0]))   # a getitem reads a node
    schema = getattr(target, "_schema", None)
    if schema is None:
        return True
    return any(r.alias_info is not None for r in schema.returns)


def _functional_twin(target: Any) -> torch._ops.OpOverload | None:
    """aten.relu.default for aten.relu_.default: the out-of-place overload of an in-place op that
    writes only its first argument and returns it; None for anything else."""
    schema = getattr(target, "_schema", None)
    if schema is None or not schema.is_mutable or not schema.name.startswith("aten::"):
        return None
    name = schema.name[len("aten::"):]
    written = [a for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
    if not name.endswith("_") or name.endswith("__") or len(written) != 1 or written[0] is not schema.arguments[0]:
        return None
    packet = getattr(torch.ops.aten, name[:-1], None)
    twin = getattr(packet, target._overloadname, None) if packet is not None else None
    twin_schema = getattr(twin, "_schema", None)
    if twin_schema is None or twin_schema.is_mutable or len(twin_schema.arguments) != len(schema.arguments):
        return None
    return twin


def _same_dtype(node: torch.fx.Node) -> bool:
    """Whether every tensor argument has the dtype of the one written: then the out-of-place op,
    which promotes, gives what the in-place op, which keeps self's dtype, gives."""
    def val(a: object) -> Any:
        return a.meta.get("val") if isinstance(a, torch.fx.Node) else None

    want = getattr(val(node.args[0]), "dtype", None)
    if want is None:
        return False
    args = list(node.args[1:]) + list(node.kwargs.values())
    return all(not isinstance(getattr(val(a), "dtype", None), torch.dtype) or val(a).dtype == want
               for a in args)


def functionalize_inplace(ep: ExportedProgram) -> ExportedProgram:
    """Rewrite `y = op_(x, ...)` as `y = op(x, ...)` where no one else can see the write: x is a
    fresh value (not an input, weight or view), no view of x exists, and the graph's output does
    not name x after the write. Later readers of x then read y. The program comes back as a new
    ExportedProgram over a copied graph (weights shared); the one given is left as it was.
    In-place ops that fail the test stay, and make the export run run_decompositions."""
    if not any(_functional_twin(n.target) for n in ep.graph.nodes if n.op == "call_function"):
        return ep
    graph = torch.fx.Graph()
    graph.output(graph.graph_copy(ep.graph, {}))
    order = {node: i for i, node in enumerate(graph.nodes)}
    changed = False
    for node in list(graph.nodes):
        twin = _functional_twin(node.target) if node.op == "call_function" else None
        if twin is None or not isinstance(node.args[0], torch.fx.Node):
            continue
        x = node.args[0]
        earlier = [u for u in x.users if order[u] < order[node]]
        later = [u for u in x.users if order[u] > order[node]]
        if _aliases(x) or any(_aliases(u) for u in earlier) or any(u.op == "output" for u in later) \
                or not _same_dtype(node):
            continue
        node.target = twin
        for user in later:
            user.replace_input_with(x, node)
        changed = True
    if not changed:
        return ep
    return ep._update(torch.fx.GraphModule(ep.graph_module, graph), ep.graph_signature)


# Higher-order ops torch.export leaves around a region that changes grad mode or autocast (a
# `with torch.no_grad():` inside forward); run_decompositions inlines their bodies.
INLINED_BY_DECOMPOSITION = frozenset({"wrap_with_set_grad_enabled", "wrap_with_autocast"})


def needs_decomposition(ep: ExportedProgram, opset: int,
                        custom: Collection[str] = frozenset()) -> list[str]:
    """The overloads in the graph that the C core does not lower and no custom translation
    covers, but that PyTorch can decompose (or that mutate: they need functionalization). Empty
    means the re-trace of run_decompositions can be skipped: it would change nothing oxport can
    use (an op with no decomposition, e.g. a custom op, is reported as unsupported instead)."""
    supported = _core.supported_targets(opset) | set(custom)
    table = None
    missing = set()
    for node in ep.graph.nodes:
        if node.op == "call_function" and isinstance(node.target, torch._ops.HigherOrderOperator) \
                and node.target.name() in INLINED_BY_DECOMPOSITION:
            missing.add(target_name(node.target))
            continue
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


def decompose(ep: ExportedProgram, opset: int, custom: Collection[str] = frozenset()) -> ExportedProgram:
    """run_decompositions with PyTorch's core-ATen table minus every op oxport lowers natively
    or has a custom translation for."""
    supported = _core.supported_targets(opset) | set(custom)
    table = torch.export.default_decompositions()
    for op in list(table.keys()):
        if target_name(op) in supported:
            del table[op]
    decomposed: ExportedProgram = ep.run_decompositions(table)
    return decomposed
