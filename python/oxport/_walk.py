"""One walk over the FX graph of an ExportedProgram, producing what oxport._core.lower takes.

Every FX value gets an integer id: user inputs first, then weights, then node outputs. Arguments
are put in schema order with defaults filled in, so the C lowering reads them by position. Nothing
here decides which ONNX ops a torch op becomes; that is the C core's job.
"""
from __future__ import annotations

import operator
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from . import _core, _registry
from ._dtypes import TORCH_TO_ONNX, onnx_dtype
from ._errors import LoweringError, OnnxExporterError, OnnxExporterWarning
from ._target import target_name

_INT64 = TORCH_TO_ONNX[torch.int64]
_DROPPED = (torch.device, torch.layout, torch.memory_format)


@dataclass
class Walked:
    """The arguments of _core.lower, plus what the Python side keeps for ONNXProgram."""
    inputs: list[_core._Input] = field(default_factory=list)        # (id, name, dtype, shape)
    # (id, name, dtype, dims, ptr, nbytes, owner)
    initializers: list[_core._Initializer] = field(default_factory=list)
    nodes: list[_core._Node] = field(default_factory=list)  # (target, name, where, args, ids, metas)
    outputs: list[int] = field(default_factory=list)       # ids
    output_names: list[str] = field(default_factory=list)  # FX names of the outputs
    nvalues: int = 0
    input_names: list[str] = field(default_factory=list)
    input_dtypes: list[torch.dtype] = field(default_factory=list)  # of the ONNX inputs, in order
    fake_weights: list[str] = field(default_factory=list)  # names of weights with no data
    dropped_mutations: list[str] = field(default_factory=list)


_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def _shape(shape: Sequence[Any], names: dict[str, str] | None = None) -> tuple[int | str, ...]:
    """Dims as ints, or as strings for symbolic ones; symbols the user named (in dynamic_shapes)
    are written with those names, also inside expressions ("s0 + 1" becomes "seq + 1")."""
    out: list[int | str] = []
    for d in shape:
        if isinstance(d, int) or _is_static(d):
            out.append(int(d))
            continue
        text = str(d)
        if names:
            text = _SYMBOL.sub(lambda m: names.get(m.group(0), m.group(0)), text)
        out.append(text)
    return tuple(out)


def _is_static(d: object) -> bool:
    try:
        return d.node.is_constant() if isinstance(d, torch.SymInt) else True
    except Exception:
        return False


def _meta(val: object, where: str, names: dict[str, str] | None = None) -> _core._Meta:
    """(onnx dtype, shape) of one FX value; (None, None) when it is not a tensor or number."""
    if isinstance(val, torch.Tensor):
        return (onnx_dtype(val.dtype, where), _shape(val.shape, names))
    if isinstance(val, (torch.SymInt, int)) and not isinstance(val, bool):
        return (_INT64, ())
    if isinstance(val, (torch.SymBool, bool)):
        return (TORCH_TO_ONNX[torch.bool], ())
    if isinstance(val, (torch.SymFloat, float)):
        return (TORCH_TO_ONNX[torch.float32], ())
    return (None, None)


def _where(node: torch.fx.Node) -> str | None:
    """The module path and source line an FX node came from: "attn.qkv (Linear), model.py:31"."""
    parts = []
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, cls = list(stack.values())[-1]
        path = path.removeprefix("L['self'].").removeprefix("L__self__.")
        cls_name = cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1]
        parts.append(f"{path} ({cls_name})" if path else cls_name)
    trace = node.meta.get("stack_trace")
    if trace:
        for line in reversed(trace.strip().splitlines()):
            line = line.strip()
            if line.startswith("File "):
                try:
                    file_part, line_part = line.split(", line ", 1)
                    fname = file_part[6:-1].rsplit("/", 1)[-1]
                    parts.append(f"{fname}:{line_part.split(',', 1)[0]}")
                except ValueError:
                    pass
                break
    return ", ".join(parts) or None


class _Schemas:
    """Per-overload argument lists, looked up once per target."""

    def __init__(self) -> None:
        self._cache: dict[Any, list[tuple[str, bool, bool, Any]]] = {}

    def get(self, target: Any) -> list[tuple[str, bool, bool, Any]]:
        spec = self._cache.get(target)
        if spec is None:
            args = target._schema.arguments
            spec = [(a.name, a.kwarg_only, a.has_default_value(), a.default_value if a.has_default_value() else None)
                    for a in args]
            self._cache[target] = spec
        return spec


def walk(ep: ExportedProgram, input_names: list[str] | None = None,
         dim_names: dict[str, str] | None = None,
         translations: dict[str, Callable[..., Any]] | None = None) -> Walked:
    """dim_names maps torch's symbols ("s0") to the names the user gave them; translations maps
    targets to custom translation functions (run here, their nodes sent to C)."""
    w = Walked()
    sig = ep.graph_signature
    graph = ep.graph_module.graph
    ids: dict[torch.fx.Node, int | tuple[int, ...]] = {}   # a tuple for multi-output nodes
    literals: dict[torch.fx.Node, _core._Arg] = {}   # non-tensor user inputs torch specialized
    refs: list[_core.Ref] = []

    def new_id() -> int:
        i = w.nvalues
        w.nvalues += 1
        refs.append(_core.Ref(i))
        return i

    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    specs = sig.input_specs
    if len(specs) != len(placeholders):
        raise RuntimeError("exported program: input specs do not match the graph placeholders")

    user = [(n, s) for n, s in zip(placeholders, specs) if s.kind == InputKind.USER_INPUT]
    tensor_inputs = [(n, s) for n, s in user if isinstance(n.meta.get("val"), torch.Tensor)]
    if input_names is not None and len(input_names) > len(tensor_inputs):
        raise ValueError(f"input_names has {len(input_names)} names but the model has "
                         f"{len(tensor_inputs)} tensor inputs")
    k = 0
    for node, _spec in user:
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            literals[node] = val if not isinstance(val, torch.SymInt) else None
            continue
        name = input_names[k] if input_names is not None and k < len(input_names) else node.name
        k += 1
        i = new_id()
        ids[node] = i
        w.inputs.append((i, name, onnx_dtype(val.dtype, f"input {name}"), _shape(val.shape, dim_names)))
        w.input_names.append(name)
        w.input_dtypes.append(val.dtype)

    state = ep.state_dict
    constants = ep.constants
    for node, spec in zip(placeholders, specs):
        if spec.kind == InputKind.USER_INPUT:
            continue
        if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            name = spec.target
            t = state[name] if name in state else constants.get(name)
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"weight {name}: expected a tensor, got {type(t).__name__}")
            i = new_id()
            ids[node] = i
            w.initializers.append(_weight(i, name, t, w))
        else:
            raise NotImplementedError(f"input {node.name}: {spec.kind.name} inputs are not exported")

    schemas = _Schemas()

    def arg(a: Any, where: str) -> _core._Arg:
        if isinstance(a, torch.fx.Node):
            if a in literals:
                return literals[a]
            i = ids.get(a)
            if i is None:
                raise RuntimeError(f"{where}: argument {a.name} has no value")
            if isinstance(i, tuple):
                raise NotImplementedError(f"{where}: argument {a.name} is a tuple of values")
            return refs[i]
        if a is None or isinstance(a, (bool, int, float, str)):
            return a
        if isinstance(a, (list, tuple)):
            return [arg(x, where) for x in a]
        if isinstance(a, torch.dtype):
            return onnx_dtype(a, where)
        if isinstance(a, _DROPPED):
            return None
        raise TypeError(f"{where}: argument of type {type(a).__name__} cannot be exported")

    def user_arg(a: Any) -> Any:
        """An argument as a translation sees it: FX values become Value handles."""
        if isinstance(a, torch.fx.Node):
            if a in literals:
                return literals[a]
            i = ids.get(a)
            if i is None or isinstance(i, tuple):
                raise NotImplementedError(f"argument {a.name} cannot be passed to a translation")
            val = a.meta.get("val")
            if isinstance(val, torch.Tensor):
                return _registry.Value(ref=refs[i], dtype=val.dtype, shape=tuple(val.shape))
            return _registry.Value(ref=refs[i])
        if isinstance(a, (list, tuple)):
            return type(a)(user_arg(x) for x in a)
        return a

    for node in graph.nodes:
        if node.op != "call_function":
            continue
        target = node.target
        if target is operator.getitem:
            src, index = node.args
            src_ids = ids.get(src)
            if isinstance(src_ids, tuple) and isinstance(index, int):
                ids[node] = src_ids[index]
                continue
        name = node.name
        tname = target_name(target)
        where = _where(node)
        fn = translations.get(tname) if translations else None
        if fn is not None:
            uargs = [user_arg(a) for a in node.args]
            ukwargs = {k: user_arg(v) for k, v in node.kwargs.items()}
            try:
                args = _registry.record(fn, uargs, ukwargs, tname, name)
            except Exception as e:
                raise LoweringError(f"{tname} (node {name}{', at ' + where if where else ''}): the custom "
                                    f"translation {getattr(fn, '__name__', fn)!r} failed: "
                                    f"{type(e).__name__}: {e}") from e
            tname = _registry.CUSTOM_TARGET
        elif hasattr(target, "_schema"):
            spec = schemas.get(target)
            nargs = node.args
            kwargs = node.kwargs
            args = []
            for j, (aname, kwonly, has_default, default) in enumerate(spec):
                if not kwonly and j < len(nargs):
                    args.append(arg(nargs[j], name))
                elif aname in kwargs:
                    args.append(arg(kwargs[aname], name))
                else:
                    args.append(arg(default, name) if has_default else None)
        else:
            args = [arg(a, name) for a in node.args]
        val = node.meta.get("val")
        if isinstance(val, (tuple, list)):
            out_ids = tuple(new_id() for _ in val)
            metas = [_meta(v, name, dim_names) for v in val]
            ids[node] = out_ids
        else:
            out_ids = (new_id(),)
            metas = [_meta(val, name, dim_names)]
            ids[node] = out_ids[0]
        w.nodes.append((tname, name, where, args, list(out_ids), metas))

    output_node = next(n for n in reversed(graph.nodes) if n.op == "output")
    out_args = output_node.args[0]
    for o, spec in zip(out_args, sig.output_specs):
        if spec.kind != OutputKind.USER_OUTPUT:
            w.dropped_mutations.append(f"{spec.kind.name}: {spec.target}")
            continue
        out_id = ids.get(o) if isinstance(o, torch.fx.Node) else None
        if out_id is None or isinstance(out_id, tuple):
            position = len(w.outputs)   # among the user's outputs
            what = (f"a {type(o).__name__} ({o!r})" if not isinstance(o, torch.fx.Node)
                    else f"the non-tensor value {o.name!r}")
            raise OnnxExporterError(f"forward's output {position} (from 0) is {what}, not a tensor: the outputs "
                                    f"of an ONNX model are tensors. Return only tensors from the exported "
                                    f"forward (e.g. wrap the model and drop the {type(o).__name__})")
        w.outputs.append(out_id)
        w.output_names.append(o.name)
    if w.dropped_mutations:
        warnings.warn("oxport: the model mutates state that ONNX cannot carry; dropped: "
                      + ", ".join(w.dropped_mutations), OnnxExporterWarning, stacklevel=3)
    return w


def _weight(i: int, name: str, t: torch.Tensor, w: Walked) -> _core._Initializer:
    """(id, name, dtype, dims, ptr, nbytes, owner): the C core borrows the tensor's bytes."""
    t = t.detach()
    dtype = onnx_dtype(t.dtype, f"weight {name}")
    dims = tuple(t.shape)
    if isinstance(t, torch._subclasses.FakeTensor) or t.device.type == "meta":
        w.fake_weights.append(name)
        return (i, name, dtype, dims, 0, t.numel() * t.element_size(), None)
    if t.device.type != "cpu":
        t = t.cpu()
    if not t.is_contiguous():
        t = t.contiguous()
    return (i, name, dtype, dims, t.data_ptr(), t.numel() * t.element_size(), t)
