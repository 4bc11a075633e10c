"""dynamic_shapes as torch.onnx takes it: Dim objects, Dim.DYNAMIC/AUTO/STATIC, ints, None, and
strings that name an axis; tuples or dicts keyed by parameter name, nested like the inputs.

prepare() turns strings into Dim.DYNAMIC for torch.export and remembers the names; after capture,
dim_names() maps torch's symbols ("s0") to the names the user gave, which the walker writes as
dim_param on inputs and outputs.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.export import Dim
from torch.export.dynamic_shapes import _combine_args

# (path of the input in the args, axis) -> the name the user gave the axis
AxisNames = dict[tuple[tuple[Any, ...], int], str]
_Model = torch.nn.Module | torch.export.ExportedProgram


def from_dynamic_axes(model: _Model, args: tuple[Any, ...], kwargs: dict[str, Any],
                      dynamic_axes: Mapping[str, Any],
                      input_names: Sequence[str] | None) -> dict[str, Any]:
    """The legacy dynamic_axes ({input name: {axis: name} or [axes]}) as dynamic_shapes."""
    warnings.warn("dynamic_axes is the TorchScript exporter's argument; oxport converts it to "
                  "dynamic_shapes. Pass dynamic_shapes instead.", DeprecationWarning, stacklevel=3)
    combined = _combine_args(model, args, kwargs)
    params = list(combined)
    names = list(input_names) if input_names else params
    shapes: dict[str, Any] = {}
    for key, axes in dynamic_axes.items():
        if key not in names:
            continue   # output axes: torch.export infers those
        param = params[names.index(key)] if names.index(key) < len(params) else None
        if param is None:
            raise ValueError(f"dynamic_axes: input {key!r} is not an input of the model")
        if isinstance(axes, dict):
            shapes[param] = {int(a): str(n) for a, n in axes.items()}
        else:
            shapes[param] = {int(a): f"{key}_dim_{a}" for a in axes}
    return shapes


def _check_and_convert(spec: Any, where: str, names: AxisNames, path: tuple[Any, ...]) -> Any:
    """Returns spec with strings replaced by Dim.DYNAMIC; records (path, axis) -> name."""
    if spec is None or (isinstance(spec, int) and not isinstance(spec, bool)):
        return spec
    if isinstance(spec, dict) and all(isinstance(k, int) for k in spec):
        out = {}
        for axis, d in spec.items():
            out[axis] = _axis(d, f"{where}[{axis}]", names, path, axis)
        return out
    if isinstance(spec, dict):
        return {k: _check_and_convert(v, f"{where}[{k!r}]", names, path + (k,)) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        if all(_is_axis_spec(d) for d in spec) and not all(d is None for d in spec):
            return type(spec)(_axis(d, f"{where}[{a}]", names, path, a) for a, d in enumerate(spec))
        return type(spec)(_check_and_convert(v, f"{where}[{i}]", names, path + (i,)) for i, v in enumerate(spec))
    raise TypeError(f"dynamic_shapes{where}: expected a dict, tuple, list, Dim, str, int or None, "
                    f"got {type(spec).__name__}")


def _is_axis_spec(d: object) -> bool:
    return d is None or isinstance(d, (str, Dim, torch.export.dynamic_shapes._DimHint, int))


def _axis(d: Any, where: str, names: AxisNames, path: tuple[Any, ...], axis: int) -> Any:
    if isinstance(d, str):
        if not d.isidentifier():
            raise ValueError(f"dynamic_shapes{where}: axis name {d!r} must be an identifier")
        names[(path, axis)] = d
        return Dim.DYNAMIC
    if isinstance(d, Dim):
        names[(path, axis)] = d.__name__
        return d
    if d is None or isinstance(d, torch.export.dynamic_shapes._DimHint) or \
            (isinstance(d, int) and not isinstance(d, bool)):
        return d
    raise TypeError(f"dynamic_shapes{where}: expected a Dim, a str, an int or None, got {type(d).__name__}")


def prepare(model: _Model, args: tuple[Any, ...], kwargs: dict[str, Any],
            dynamic_shapes: Any) -> tuple[Any, AxisNames]:
    """Validates dynamic_shapes before capture. Returns (spec for torch.export,
    {(path, axis): name})."""
    names: AxisNames = {}
    spec: Any
    if dynamic_shapes is None:
        return None, names
    if isinstance(dynamic_shapes, dict):
        if isinstance(model, torch.nn.Module):
            params = set(_combine_args(model, args, kwargs))
            unknown = [k for k in dynamic_shapes if k not in params]
            if unknown:
                raise ValueError(f"dynamic_shapes names {unknown}, which are not inputs of the model "
                                 f"(inputs: {sorted(params)})")
        spec = {k: _check_and_convert(v, f"[{k!r}]", names, (k,)) for k, v in dynamic_shapes.items()}
    elif isinstance(dynamic_shapes, (tuple, list)):
        # Counted by parameter, as torch.export does: forward(*args) takes one entry for all
        # its args.
        n_inputs = (len(_combine_args(model, args, kwargs)) if isinstance(model, torch.nn.Module)
                    else len(args) + len(kwargs or {}))
        if len(dynamic_shapes) != n_inputs:
            raise ValueError(f"dynamic_shapes has {len(dynamic_shapes)} entries but the model is "
                             f"given {n_inputs} inputs")
        spec = type(dynamic_shapes)(_check_and_convert(v, f"[{i}]", names, (i,))
                                    for i, v in enumerate(dynamic_shapes))
    else:
        raise TypeError(f"dynamic_shapes must be a dict or a tuple, got {type(dynamic_shapes).__name__}")
    if isinstance(model, torch.nn.Module):
        combined = _combine_args(model, args, kwargs)
        keyed = isinstance(dynamic_shapes, dict)
        for i, (param, value) in enumerate(combined.items()):
            key = param if keyed else i
            if (keyed and key in dynamic_shapes) or (not keyed and i < len(dynamic_shapes)):
                _check_axes(dynamic_shapes[key], value, f"[{key!r}]", param)
    return spec, names


def _check_axes(spec: Any, value: Any, where: str, param: str) -> None:
    """An axis the spec names must exist in the input it describes: torch.export ignores an
    out-of-range one, and the dim the user meant dynamic would come out static."""
    if isinstance(value, torch.Tensor):
        if isinstance(spec, dict) and all(isinstance(k, int) for k in spec):
            axes = list(spec)
        elif isinstance(spec, (list, tuple)) and all(_is_axis_spec(d) for d in spec):
            axes = [a for a, d in enumerate(spec) if d is not None]
        else:
            return
        for axis in axes:
            if isinstance(axis, bool) or not 0 <= axis < value.dim():
                raise ValueError(f"dynamic_shapes{where}: input {param!r} has {value.dim()} "
                                 f"dim{'s' if value.dim() != 1 else ''} (shape {list(value.shape)}), so it "
                                 f"has no axis {axis}; axes are 0 to {value.dim() - 1}")
    elif isinstance(spec, dict) and isinstance(value, dict):
        for k, v in spec.items():
            if k in value:
                _check_axes(v, value[k], f"{where}[{k!r}]", param)
    elif isinstance(spec, (list, tuple)) and isinstance(value, (list, tuple)):
        for i, (v, x) in enumerate(zip(spec, value)):
            _check_axes(v, x, f"{where}[{i}]", param)


def dim_names(model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
              dynamic_shapes: Any, names: AxisNames,
              ep: torch.export.ExportedProgram) -> dict[str, str]:
    """torch's symbol → user name, found by walking the inputs beside the spec."""
    if not names:
        return {}
    combined = _combine_args(model, args, kwargs)
    keyed = isinstance(dynamic_shapes, dict)
    found: dict[tuple[Any, ...], torch.Tensor] = {}    # path -> tensor
    for i, (param, value) in enumerate(combined.items()):
        root = (param,) if keyed else (i,)
        _collect(value, root, found)
    result: dict[str, str] = {}
    for (path, axis), name in names.items():
        t = found.get(path)
        if t is None or axis >= t.dim():
            continue
        # The captured program's placeholder for this tensor holds the symbol: find it by identity
        # of position among user inputs.
        sym = _symbol_for(ep, t, path, axis, found)
        if sym and sym not in result:
            result[sym] = name
    return result


def _collect(value: object, path: tuple[Any, ...],
             found: dict[tuple[Any, ...], torch.Tensor]) -> None:
    if isinstance(value, torch.Tensor):
        found[path] = value
    elif isinstance(value, dict):
        for k, v in value.items():
            _collect(v, path + (k,), found)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _collect(v, path + (i,), found)


def _symbol_for(ep: torch.export.ExportedProgram, tensor: torch.Tensor, path: tuple[Any, ...],
                axis: int, found: dict[tuple[Any, ...], torch.Tensor]) -> str | None:
    tensors = list(found.values())
    index = next(k for k, t in enumerate(tensors) if t is tensor)
    from torch.export.graph_signature import InputKind
    user = [n for n, s in zip((n for n in ep.graph.nodes if n.op == "placeholder"),
                              ep.graph_signature.input_specs)
            if s.kind == InputKind.USER_INPUT and isinstance(n.meta.get("val"), torch.Tensor)]
    if index >= len(user):
        return None
    d = user[index].meta["val"].shape[axis]
    if isinstance(d, torch.SymInt) and getattr(d.node.expr, "is_Symbol", False):
        return str(d)
    return None
