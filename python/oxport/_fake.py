"""enable_fake_mode(): build models and inputs as fake tensors (shapes and dtypes, no memory),
export them, and supply real weights afterwards with ONNXProgram.apply_weights.

Why torch.onnx's version broke with Hugging Face transformers: a transformers model computes some
tensors in __init__ and registers them as *non-persistent* buffers (Llama's rotary `inv_freq`, from
`base ** (arange(0, dim, 2) / dim)`). Under fake mode they are fake too, and since they are not in
any state_dict, `apply_weights(real.state_dict())` can never supply them: the exported model keeps a
weight with no data. Here the fake mode records, for every small tensor it produces with
deterministic ops, how it was computed (op and arguments: a thunk), and when the context exits every
non-persistent buffer registered inside it is computed for real from its thunk. (An export *inside*
the context still sees them fake: torch.export fakifies the model's real buffers under an active
fake mode.) Parameters and persistent buffers stay fake; they come from the state_dict. Random ops
(`nondeterministic_seeded`) leave no thunk, so a buffer drawn at random stays fake.
"""
from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch.utils import _pytree

if TYPE_CHECKING:   # imported lazily below (torch._subclasses is slow to import)
    from torch._subclasses.fake_tensor import FakeTensorMode

# Tensors larger than this (elements) are never computed for real: parameters and anything the
# size of one are left fake, and their thunks are not kept.
_MAX_NUMEL = 1 << 22

# (module weakref, buffer name) of the non-persistent buffers registered under fake mode, still
# to compute for real.
_pending: list[tuple[weakref.ref[torch.nn.Module], str]] = []


class _NotComputable(Exception):
    pass


class _Thunk:
    """How a fake tensor was computed: func(*args, **kwargs), output `index` of its flat outputs.
    For an in-place op, args[0] is the thunk of the tensor before the op."""
    __slots__ = ("args", "func", "index", "inplace", "kwargs")

    def __init__(self, func: Any, args: Any, kwargs: Any, index: int | None,
                 inplace: bool = False) -> None:
        self.func, self.args, self.kwargs, self.index, self.inplace = func, args, kwargs, index, inplace

    def evaluate(self, memo: dict[int, Any]) -> Any:
        key = id(self)
        if key in memo:
            return memo[key]

        def real(x: Any) -> Any:
            if isinstance(x, _Thunk):
                return x.evaluate(memo)
            if _is_fake(x):
                th = x.__dict__.get("_oxport_thunk")
                if th is None:
                    raise _NotComputable
                return th.evaluate(memo)
            return x

        args = _pytree.tree_map(real, self.args)
        kwargs = _pytree.tree_map(real, self.kwargs)
        if self.inplace:   # the value before the op may be read elsewhere: mutate a copy
            args = (args[0].clone(),) + tuple(args[1:])
        out = self.func(*args, **kwargs)
        if self.index is not None:
            out = _pytree.tree_leaves(out)[self.index]
        memo[key] = out
        return out


def _is_fake(x: object) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor
    return isinstance(x, FakeTensor)


def _record(func: Any, args: Any, kwargs: Any, out: Any) -> None:
    """Attach a thunk to each tensor `func` produced (or mutated), or drop a stale one."""
    schema = func._schema
    written = [i for i, a in enumerate(schema.arguments) if a.alias_info is not None and a.alias_info.is_write]
    random = torch.Tag.nondeterministic_seeded in func.tags
    if written:   # in-place or out= op: only the common form, self mutated, is followed
        target = args[0] if written == [0] and args and _is_fake(args[0]) else None
        for i in written:
            if i < len(args) and _is_fake(args[i]) and args[i] is not target:
                args[i].__dict__.pop("_oxport_thunk", None)
        if target is None:
            return
        prev = target.__dict__.get("_oxport_thunk")
        if prev is None or random or target.numel() > _MAX_NUMEL:
            target.__dict__.pop("_oxport_thunk", None)
            return
        target._oxport_thunk = _Thunk(func, (prev,) + tuple(args[1:]), kwargs, None, inplace=True)
        return
    if random:
        return
    outs = _pytree.tree_leaves(out)
    tensors = [o for o in outs if _is_fake(o)]
    if not tensors or any(o.numel() > _MAX_NUMEL for o in tensors):
        return
    single = len(outs) == 1
    for i, o in enumerate(outs):
        if _is_fake(o) and "_oxport_thunk" not in o.__dict__:
            o._oxport_thunk = _Thunk(func, args, kwargs, None if single else i)


def _fake_mode_class() -> type[FakeTensorMode]:
    from torch._subclasses.fake_tensor import FakeTensorMode

    class _RecordingFakeTensorMode(FakeTensorMode):
        """FakeTensorMode that keeps thunks while `recording` (inside enable_fake_mode)."""
        recording = False

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = super().__torch_dispatch__(func, types, args, kwargs)
            if self.recording:
                try:
                    _record(func, args, kwargs or {}, out)
                except Exception:   # bookkeeping only: never break the model's own code
                    pass
            return out

    return _RecordingFakeTensorMode


def materialize_buffers() -> None:
    """Compute for real every non-persistent buffer registered under fake mode that has a thunk
    (called when the context exits)."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily
    if not _pending:
        return
    items = list(_pending)
    _pending.clear()
    memo: dict[int, Any] = {}
    with unset_fake_temporarily(), torch.no_grad():
        for ref, name in items:
            module = ref()
            if module is None:
                continue
            t: Any = module._buffers.get(name)
            if not _is_fake(t):
                continue
            th = t.__dict__.get("_oxport_thunk")
            if th is None:
                continue
            try:
                value = th.evaluate(memo)
            except _NotComputable:
                continue
            if isinstance(value, torch.Tensor) and value.shape == t.shape and value.dtype == t.dtype:
                module._buffers[name] = value.detach()


def computed_buffers(model: object) -> dict[str, torch.Tensor]:
    """{qualified name: real tensor} for the fake buffers of `model` that have a thunk, evaluated
    now without touching the module: what an export made inside the context uses to fill them."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily
    if not isinstance(model, torch.nn.Module):
        return {}
    found: dict[str, torch.Tensor] = {}
    memo: dict[int, Any] = {}
    with unset_fake_temporarily(), torch.no_grad():
        for name, t in model.named_buffers(remove_duplicate=False):
            th = t.__dict__.get("_oxport_thunk") if _is_fake(t) else None
            if th is None:
                continue
            try:
                value = th.evaluate(memo)
            except _NotComputable:
                continue
            if isinstance(value, torch.Tensor) and value.shape == t.shape and value.dtype == t.dtype:
                found[name] = value.detach()
    return found


@contextlib.contextmanager
def enable_fake_mode() -> Iterator[FakeTensorMode]:
    """Within the context, parameters, buffers and tensors are created as FakeTensors.

    Export works outside or inside the context; the exported program's weights are absent until
    apply_weights() supplies them (saving with include_initializers=False works without them).
    Non-persistent buffers computed from constants (rotary frequencies, masks) are computed for real
    when the context exits, since no state_dict carries them; an export made inside the context
    computes them itself (computed_buffers).
    """
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    mode: Any = _fake_mode_class()(allow_non_fake_inputs=True,
                              shape_env=ShapeEnv(allow_dynamic_output_shape_ops=True))
    original = torch.nn.Module.register_buffer

    def register_buffer(module: torch.nn.Module, name: str, tensor: torch.Tensor | None,
                        persistent: bool = True) -> None:
        original(module, name, tensor, persistent=persistent)
        if not persistent and _is_fake(tensor):
            _pending.append((weakref.ref(module), name))

    torch.nn.Module.register_buffer = register_buffer   # type: ignore[method-assign,assignment]
    mode.recording = True
    try:
        with mode:
            yield mode
    finally:
        mode.recording = False
        torch.nn.Module.register_buffer = original   # type: ignore[method-assign]
        materialize_buffers()
