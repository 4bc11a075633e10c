"""Capture: torch.export, then decomposition of only what the C core does not lower natively."""
from __future__ import annotations

import operator
from collections.abc import Callable, Collection
from typing import Any, cast

import torch
from torch.export import ExportedProgram

from . import _core
from ._errors import CaptureError
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

STRATEGIES: tuple[tuple[str, _Strategy], ...] = (
    ("torch.export(strict=False)", _nonstrict), ("torch.export(strict=True)", _strict),
    ("torch.export.draft_export", _draft))


def capture(model: torch.nn.Module | ExportedProgram, args: tuple[Any, ...],
            kwargs: dict[str, Any] | None, dynamic_shapes: Any = None,
            attempts: list[tuple[str, str]] | None = None) -> tuple[ExportedProgram, str]:
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
