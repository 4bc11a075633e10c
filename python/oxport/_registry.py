"""OnnxRegistry and custom translations.

A translation is a Python function called with the torch op's arguments (tensors as `Value`
handles, everything else as given) that builds ONNX nodes through `oxport.op`:

    from oxport import op

    def custom_gelu(x, approximate="none"):
        return op.Mul(x, op.Sigmoid(op.Mul(x, op.constant(1.702))))

    oxport.export(model, args, custom_translation_table={torch.ops.aten.gelu.default: custom_gelu})

A translation may also be an onnxscript function (`@onnxscript.script()`): the op's tensors are its
inputs and its other arguments the call's attributes.

The walker runs the translation once per use and hands the recorded nodes to the C core, which
emits them (the `oxport::custom_nodes` row of src/lower/lower.c); an onnxscript function is recorded
as one call and travels as its FunctionProto, which the C core inlines (src/onnx/inline.c). A
translation replaces a built-in lowering or supplies an op oxport lacks, e.g. one made with
torch.library.custom_op.
"""
from __future__ import annotations

import contextvars
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch

from . import _core
from ._dtypes import TORCH_TO_ONNX
from ._errors import OnnxExporterError
from ._target import target_name

CUSTOM_TARGET = "oxport::custom_nodes.default"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Value:
    """An ONNX value inside a translation: a graph value (`ref`) or an output of a node the
    translation made (`index`)."""
    __slots__ = ("dtype", "index", "ref", "shape")

    def __init__(self, ref: _core.Ref | None = None, index: int | None = None,
                 dtype: torch.dtype | None = None, shape: tuple[Any, ...] | None = None) -> None:
        self.ref, self.index, self.dtype, self.shape = ref, index, dtype, shape

    def _encode(self) -> _core.Ref | int | None:
        return self.ref if self.ref is not None else self.index

    def __repr__(self) -> str:
        what = f"graph value {self.ref.id}" if self.ref is not None else f"node output {self.index}"
        return f"Value({what}, dtype={self.dtype}, shape={self.shape})"


class _Recorder:
    def __init__(self) -> None:
        self.nodes: list[list[Any]] = []   # [op_type, domain, inputs, attributes, noutputs]
        self.nlocals = 0
        self.functions: list[bytes] = []   # FunctionProtos the nodes may call


_recorder: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar("oxport_recorder", default=None)


def _attr(name: str, value: object) -> list[Any]:
    if isinstance(value, (bool, int, np.integer)):
        return [name, "int", int(value)]
    if isinstance(value, (float, np.floating)):
        return [name, "float", float(value)]
    if isinstance(value, str):
        return [name, "string", value]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return [name, "tensor", _tensor_payload(value)]
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            return [name, "ints", [int(v) for v in value]]
        if all(isinstance(v, (int, float, np.number)) for v in value):
            return [name, "floats", [float(v) for v in value]]
    raise TypeError(f"attribute {name}={value!r}: expected an int, float, str, a list of numbers "
                    f"or a tensor")


def _tensor_payload(value: torch.Tensor | np.ndarray[Any, Any]) -> list[Any]:
    t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
    t = t.detach().cpu().contiguous()
    if t.dtype not in TORCH_TO_ONNX:
        raise TypeError(f"a constant of dtype {t.dtype} has no ONNX equivalent")
    raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return [TORCH_TO_ONNX[t.dtype], list(t.shape), raw]


class _Ops:
    """`oxport.op.<OpType>(*inputs, **attributes)` adds an ONNX node to the translation being
    recorded and returns its output (a tuple when `_outputs` > 1). `_domain` sets the node's domain.
    Python numbers, numpy arrays and torch tensors given as inputs become constants."""

    def __getattr__(self, op_type: str) -> Callable[..., Value | tuple[Value, ...]]:
        if op_type.startswith("_"):
            raise AttributeError(op_type)

        def make(*inputs: Any, _outputs: int = 1, _domain: str = "",
                 **attrs: Any) -> Value | tuple[Value, ...]:
            return _add_node(op_type, _domain, inputs, attrs, _outputs)
        make.__name__ = op_type
        return make

    def constant(self, value: Any, dtype: torch.dtype | None = None) -> Value:
        """A constant tensor (from a number, a list, a numpy array or a torch tensor)."""
        t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
        if dtype is not None:
            t = t.to(dtype)
        out = cast(Value, _add_node("Constant", "", (), {"value": t}, 1))   # one output: a Value
        out.dtype, out.shape = t.dtype, tuple(t.shape)
        return out


op = _Ops()


def _add_node(op_type: str, domain: str, inputs: Sequence[Any], attrs: Mapping[str, Any],
              noutputs: int) -> Value | tuple[Value, ...]:
    rec = _recorder.get()
    if rec is None:
        raise RuntimeError(f"oxport.op.{op_type} used outside a translation: it only records nodes "
                           f"while oxport.export runs a custom translation")
    if not isinstance(noutputs, int) or noutputs < 1:
        raise ValueError(f"{op_type}: _outputs must be a positive int")
    encoded: list[_core.Ref | int | None] = []
    for x in inputs:
        if x is None:
            encoded.append(None)
        elif isinstance(x, Value):
            encoded.append(x._encode())
        elif isinstance(x, (int, float, bool, np.ndarray, np.number, torch.Tensor, list)):
            encoded.append(op.constant(x)._encode())
        else:
            raise TypeError(f"{op_type}: input of type {type(x).__name__} is not a value")
    attr_list = [_attr(k, v) for k, v in attrs.items()]
    rec.nodes.append([op_type, domain, encoded, attr_list, noutputs])
    outs = tuple(Value(index=rec.nlocals + k) for k in range(noutputs))
    rec.nlocals += noutputs
    return outs[0] if noutputs == 1 else outs


# fn -> _function_protos(fn)
_protos_cache: weakref.WeakKeyDictionary[Any, tuple[Any, list[bytes]]] = weakref.WeakKeyDictionary()


def _function_protos(fn: Any) -> tuple[Any, list[bytes]]:
    """(FunctionProto, [serialized FunctionProto, ...]) of an onnxscript function: itself first,
    then every function it calls, directly or not, for the C core to inline."""
    protos = _protos_cache.get(fn)
    if protos is None:
        fp = fn.to_function_proto()
        # The functions fn calls, transitively (to_model_proto would list them too, but refuses
        # functions with required attributes).
        called = fn.function_ir.get_called_functions().values()
        protos = (fp, [fp.SerializeToString()] + [f.to_function_proto().SerializeToString() for f in called])
        for data in protos[1]:
            _check_utf8(data, fn)
        _protos_cache[fn] = protos
    return protos


def _check_utf8(data: bytes, fn: Any) -> None:
    """Every string of a FunctionProto must be UTF-8, as ONNX requires: the C core copies them into
    the graph, and a name that is not would fail far from its cause (decoding the model's op types
    or names). onnx.proto is proto2, so parsing does not check it: a bad string reads as bytes."""
    import onnx

    def bad(msg: Any, path: str) -> str | None:
        for field, value in msg.ListFields():
            # is_repeated in protobuf 6, label before it
            repeated = bool(getattr(field, "is_repeated", None)
                            or getattr(field, "label", None) == field.LABEL_REPEATED)
            values = list(value) if repeated else [value]
            for i, v in enumerate(values):
                where = f"{path}.{field.name}" + (f"[{i}]" if repeated else "")
                if field.type == field.TYPE_STRING and not isinstance(v, str):
                    return f"{where} = {v!r}"
                if field.type == field.TYPE_MESSAGE:
                    found = bad(v, where)
                    if found:
                        return found
        return None

    proto = onnx.FunctionProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError: not a FunctionProto at all
        raise OnnxExporterError(f"custom translation {getattr(fn, 'name', fn)!r}: its FunctionProto cannot "
                                f"be read: {e}") from None
    found = bad(proto, "FunctionProto")
    if found:
        raise OnnxExporterError(f"custom translation {getattr(fn, 'name', fn)!r}: FunctionProto "
                                f"{proto.name!r} holds a "
                                f"string that is not valid UTF-8, which ONNX requires: {found}")


def _call_onnxscript(rec: _Recorder, fn: Any, args: Sequence[Any],
                     kwargs: dict[str, Any]) -> Value | tuple[Value, ...]:
    """Records one call of onnxscript function `fn`: the op's arguments bound to the function's
    parameters by position and name, tensors becoming its inputs and the rest the call's
    attributes (an argument left None takes the function's default). The C core reads the
    FunctionProto and inlines it (src/onnx/inline.c)."""
    import inspect

    fp, functions = _function_protos(fn)
    try:
        bound = inspect.signature(fn.function).bind(*args, **kwargs).arguments
    except TypeError as e:
        raise TypeError(f"onnxscript function {fp.name}: the op's arguments do not fit its "
                        f"parameters: {e}") from None
    attr_names = set(fp.attribute) | {a.name for a in fp.attribute_proto}
    inputs = [bound.get(name) for name in fp.input]
    while inputs and inputs[-1] is None:    # trailing optional inputs left out
        inputs.pop()
    attrs = {name: value for name, value in bound.items() if name in attr_names and value is not None}
    for proto in functions:
        if proto not in rec.functions:
            rec.functions.append(proto)
    return _add_node(fp.name, fp.domain, inputs, attrs, len(fp.output))


def record(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any], target: str,
           node: str) -> list[Any]:
    """Runs translation `fn` of op `target` at FX node `node` (a Python function using oxport.op,
    or an onnxscript function, which the C core inlines); returns the args of the custom_nodes row:
    [nodes, results, functions, target]."""
    rec = _Recorder()
    token = _recorder.set(rec)
    try:
        if hasattr(fn, "to_function_proto") and hasattr(fn, "function"):
            result = _call_onnxscript(rec, fn, args, kwargs)
        else:
            result = fn(*args, **kwargs)
    finally:
        _recorder.reset(token)
    results = result if isinstance(result, (tuple, list)) else (result,)
    encoded: list[_core.Ref | int | None] = []
    for r in results:
        if not isinstance(r, Value):
            raise TypeError(f"{target} (node {node}): the translation {getattr(fn, '__name__', fn)!r} "
                            f"returned {type(r).__name__}; it must return values made with oxport.op")
        encoded.append(r._encode())
    return [rec.nodes, encoded, rec.functions, target]


def qualified_name(namespace: str, op_name: str, overload: str | None) -> str:
    if not isinstance(namespace, str) or not _NAME.match(namespace or ""):
        raise ValueError(f"namespace {namespace!r} must be a name like 'aten' or 'mylib' "
                         f"(the op is namespace::op_name)")
    if not isinstance(op_name, str) or not _NAME.match(op_name or ""):
        raise ValueError(f"op_name {op_name!r} must be a name like 'add' (the op is namespace::op_name)")
    if overload is not None and (not isinstance(overload, str) or not _NAME.match(overload)):
        raise ValueError(f"overload {overload!r} must be a name like 'Tensor' or None")
    return f"{namespace}::{op_name}.{overload or 'default'}"


class BuiltinLowering:
    """A lowering written in oxport's C core (a row of src/lower/lower.def)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __repr__(self) -> str:
        return f"<oxport built-in lowering of {self.target}>"


class OnnxRegistry:
    """The translations oxport knows: the built-in C lowerings plus registered Python ones."""

    def __init__(self, opset_version: int = 20) -> None:
        self._opset_version = opset_version
        self._custom: dict[str, list[Callable[..., Any]]] = {}

    @property
    def opset_version(self) -> int:
        return self._opset_version

    def register_op(self, function: Callable[..., Any], namespace: str, op_name: str, overload: str | None = None,
                    is_complex: bool = False) -> None:
        """Register `function` as the translation of namespace::op_name.overload."""
        if not callable(function):
            raise TypeError(f"function must be callable, got {type(function).__name__}")
        if is_complex:
            raise NotImplementedError("complex translations are not supported by oxport yet")
        self._custom.setdefault(qualified_name(namespace, op_name, overload), []).append(function)

    def is_registered_op(self, namespace: str, op_name: str, overload: str | None = None) -> bool:
        name = qualified_name(namespace, op_name, overload)
        return name in self._custom or name in _core.supported_targets(self._opset_version)

    def get_op_functions(self, namespace: str, op_name: str,
                         overload: str | None = None) -> list[BuiltinLowering | Callable[..., Any]] | None:
        """Built-in lowering first, then custom functions in registration order; None if none."""
        name = qualified_name(namespace, op_name, overload)
        found: list[BuiltinLowering | Callable[..., Any]] = []
        if name in _core.supported_targets(self._opset_version):
            found.append(BuiltinLowering(name))
        found.extend(self._custom.get(name, []))
        return found or None

    def _translations(self) -> dict[str, Callable[..., Any]]:
        """target → the translation used: the last one registered."""
        return {name: fns[-1] for name, fns in self._custom.items() if fns}


def table_to_translations(table: dict[Any, Any] | None) -> dict[str, Callable[..., Any]]:
    """custom_translation_table {op overload: function or [functions]} → {target: function}."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise TypeError(f"custom_translation_table must be a dict, got {type(table).__name__}")
    out: dict[str, Callable[..., Any]] = {}
    for key, fns in table.items():
        if isinstance(key, torch._ops.OpOverloadPacket):
            key = key.default
        if not isinstance(key, torch._ops.OpOverload):
            raise TypeError(f"custom_translation_table key {key!r} must be a torch op overload, "
                            f"e.g. torch.ops.aten.add.Tensor")
        fn = fns[-1] if isinstance(fns, (list, tuple)) and fns else fns
        if not callable(fn):
            raise TypeError(f"custom_translation_table[{key}] must be a function or a list of them")
        out[target_name(key)] = fn
    return out


__all__ = ["BuiltinLowering", "OnnxRegistry", "Value", "op"]
