"""ONNXProgram: the exported model, as torch.onnx.ONNXProgram presents it."""
from __future__ import annotations

import functools
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils import _pytree
from torch.utils.dlpack import from_dlpack

from . import _core
from ._dtypes import ONNX_TO_TORCH
from ._errors import OnnxExporterWarning, OnnxRuntimeError
from ._options import ONNXRuntimeOptions
from ._verify import VerificationInfo

if TYPE_CHECKING:
    import onnx  # imported when first needed: it is slow to import

_LARGE_MODEL = 2 * 1024**3   # protobuf's limit: larger models must use external data


def _ort_session_initializer(model: str | bytes, options: ONNXRuntimeOptions | None = None) -> Any:
    """The default session: ONNX Runtime on the CPU, errors only in its log, unless `options` (an
    ONNXRuntimeOptions) gives the session options, providers and provider options."""
    import onnxruntime as ort

    opts = options.session_options if options is not None else None
    if opts is None:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
    providers = options.execution_providers if options is not None else None
    provider_options = options.execution_provider_options if options is not None else None
    return ort.InferenceSession(model, sess_options=opts, providers=providers or ["CPUExecutionProvider"],
                                provider_options=provider_options)


class ONNXProgram:
    """An ONNX model that can be called with torch tensors.

    Mirrors torch.onnx.ONNXProgram: `model_proto`, `optimize()`, `save()`, calling runs ONNX
    Runtime, `release()` drops the session. The graph lives in the C core (`_graph`).
    """

    def __init__(self, graph: _core.Graph, exported_program: torch.export.ExportedProgram, *,
                 input_names: Sequence[str], capture_strategy: str,
                 timings: dict[str, float] | None = None,
                 weights: Sequence[tuple[str, int, Sequence[int]]] = ()) -> None:
        self._graph = graph
        # name -> (index in the core's weight list, torch dtype, shape)
        self._weights = {name: (i, ONNX_TO_TORCH[dtype], tuple(dims))
                         for i, (name, dtype, dims) in enumerate(weights)}
        self.exported_program = exported_program
        self.capture_strategy = capture_strategy
        self.timings = dict(timings or {})
        self._input_names = list(input_names)
        self._proto: onnx.ModelProto | None = None
        self._inference_session: Any = None   # an onnxruntime.InferenceSession
        # Guards the session and the graph's weights: a call takes the session under it and runs
        # outside it, so apply_weights in another thread swaps the session between two runs,
        # never under one.
        self._session_lock = threading.RLock()
        # the ONNXRuntimeOptions the session was made with
        self._runtime_options: ONNXRuntimeOptions | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        # when exported with verify=True
        self.verification: list[VerificationInfo] | None = None
        self.report_path: str | None = None   # the markdown report when exported with report=True
        self.pass_stats: dict[str, int] | None = None   # what optimize() did

    # ---- the model ----

    @property
    def model_proto(self) -> onnx.ModelProto:
        """The model as an onnx.ModelProto (parsed from the core's bytes; cached)."""
        if self._proto is None:
            import onnx

            if self._graph.stats()["initializer_bytes"] > _LARGE_MODEL:
                raise ValueError("the model is over 2 GB, beyond what a ModelProto can hold; "
                                 "use save(..., external_data=True)")
            self._proto = onnx.load_from_string(self._graph.serialize())
        return self._proto

    def _changed(self) -> None:
        self._proto = None
        self.release()

    def optimize(self) -> None:
        """Optimize the graph in place, in the C core."""
        with self._session_lock:
            self.pass_stats = self._graph.optimize()
            self._changed()

    def save(self, destination: str | os.PathLike[str], *, include_initializers: bool = True,
             keep_initializers_as_inputs: bool = False, external_data: bool | None = None) -> None:
        """Save the model to `destination`, atomically: a save that fails or is killed leaves the
        old model and its data as they were, a save that returns has replaced both.

        Weights go to one data file beside the model when `external_data` is true, or when it is
        None and the weights exceed 2 GB: `<file name>.data`, torch.onnx's name, unless the model
        being replaced uses that file; then `<file name>.<8 hex digits>.data`, so that the old
        model keeps its data until the new one is in place. The old model's data file and the
        leftovers of earlier killed saves of this model are removed. The four initializer modes
        are those of torch.onnx.ONNXProgram.save.
        """
        if not isinstance(destination, (str, os.PathLike)):
            raise TypeError(f"save: destination must be a path, got {type(destination).__name__}")
        path = os.fspath(destination)
        if external_data is None:
            external_data = (include_initializers
                             and self._graph.stats()["initializer_bytes"] > _LARGE_MODEL)
        self._graph.save(path=path, include_initializers=bool(include_initializers),
                         keep_initializers_as_inputs=bool(keep_initializers_as_inputs),
                         external_data=bool(external_data))

    def apply_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Replace weights by name (fake ones included) with the tensors of `state_dict`.

        A name the model does not have warns; a dtype or shape that differs raises ValueError naming
        the weight. Apply weights before optimize(): a weight the optimizer folded into other
        constants (e.g. BatchNorm into Conv) can no longer be replaced, and says so.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict of tensors, got {type(state_dict).__name__}")
        checked = []
        for name, tensor in state_dict.items():
            entry = self._weights.get(name)
            if entry is None:
                warnings.warn(f"apply_weights: the model has no weight named {name!r}; skipped",
                              OnnxExporterWarning, stacklevel=2)
                continue
            index, dtype, shape = entry
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"apply_weights: {name!r} is a {type(tensor).__name__}, not a tensor")
            kind = _unrunnable(tensor)
            if kind in ("meta", "fake"):
                raise ValueError(f"apply_weights: {name!r} is a {kind} tensor, which holds no data; real "
                                 f"weights are needed")
            if kind == "sparse":
                raise ValueError(f"apply_weights: {name!r} is a {tensor.layout} tensor; ONNX weights are "
                                 f"dense: pass {name!r}.to_dense()")
            if kind == "quantized":
                raise ValueError(f"apply_weights: {name!r} is a quantized tensor ({tensor.dtype}); pass "
                                 f"its dequantized or integer values")
            if tensor.dtype != dtype or tuple(tensor.shape) != shape:
                raise ValueError(f"apply_weights: {name!r} is {tensor.dtype} {list(tensor.shape)}, the "
                                 f"model's weight is {dtype} {list(shape)}")
            t = tensor.detach().cpu().contiguous()
            checked.append((index, t))
        with self._session_lock:
            for index, t in checked:   # all checked first: a bad entry changes nothing
                self._graph.set_weight(index, t.data_ptr(), t.numel() * t.element_size(), t)
            self._changed()

    def compute_values(self, value_names: Sequence[str], args: tuple[Any, ...] = (),
                       kwargs: dict[str, Any] | None = None) -> list[torch.Tensor]:
        """The values of the ONNX graph named `value_names` (any intermediate value included), for
        these inputs, computed by ONNX Runtime."""
        import difflib

        import onnx
        import onnxruntime as ort

        if isinstance(value_names, str):
            value_names = [value_names]
        if not isinstance(value_names, Sequence) or not all(isinstance(v, str) for v in value_names):
            bad = value_names if not isinstance(value_names, Sequence) else \
                next(v for v in value_names if not isinstance(v, str))
            raise TypeError(f"compute_values: value_names must be a list of value names (str), got "
                            f"{type(bad).__name__} {bad!r}")
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"compute_values: args must be a tuple of the model's inputs, got {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise TypeError(f"compute_values: kwargs must be a dict, got {type(kwargs).__name__}")
        feeds = self._feeds(tuple(args), dict(kwargs or {}))
        model = onnx.ModelProto()
        model.CopyFrom(self.model_proto)
        graph = model.graph
        known = {v.name: v for v in list(graph.value_info) + list(graph.output) + list(graph.input)}
        for n in graph.node:
            for o in n.output:
                known.setdefault(o, None)
        for init in graph.initializer:
            known.setdefault(init.name, None)
        missing = [v for v in value_names if v not in known]
        if missing:
            hints = {m: difflib.get_close_matches(m, list(known), n=3) for m in missing}
            raise ValueError("compute_values: no value named " + "; ".join(
                f"{m!r}" + (f" (close: {', '.join(hints[m])})" if hints[m] else "") for m in missing))
        outputs = {o.name for o in graph.output}
        for name in value_names:
            if name not in outputs:
                info = known[name]
                graph.output.append(info if info is not None else onnx.ValueInfoProto(name=name))
                outputs.add(name)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        results = session.run_with_ort_values(list(value_names), feeds)
        return [_from_ort_value(r) for r in results]

    def rename_axes(self, rename_mapping: dict[Any, str]) -> None:
        """Rename dynamic axes (dim_param names) everywhere: inputs, outputs and value_info.

        Keys are axis names (or objects whose `.value` is one, such as onnx_ir's SymbolicDim, as
        torch.onnx takes); values are the new names. A name also renames the expressions it
        appears in as a whole word ("2*s0" becomes "2*batch" with {"s0": "batch"}), longest keys
        first, as torch.onnx does (in one pass, so that a swap of two names works).
        """
        if not isinstance(rename_mapping, dict):
            raise TypeError(f"rename_axes takes a dict, got {type(rename_mapping).__name__}")
        mapping: dict[str, str] = {}
        for key, value in rename_mapping.items():
            old = key if isinstance(key, str) else getattr(key, "value", None)
            if not isinstance(old, str):
                raise ValueError(f"rename_axes: key {key!r} is not an axis name")
            if not isinstance(value, str) or not value:
                raise ValueError(f"rename_axes: the new name for {old!r} must be a non-empty string, got {value!r}")
            mapping[old] = value
        if not mapping:
            return
        # One pass over each name, longest keys first: {"a": "b", "b": "a"} swaps in "a+b" too.
        words = re.compile(r"(?<!\w)(" + "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True))
                           + r")(?!\w)")
        exact: dict[str, str] = {}
        for name in self._graph.rename_dim_params({}):
            new = mapping.get(name) or words.sub(lambda m: mapping[m.group(1)], name)
            if new != name:
                exact[name] = new
        if exact:
            with self._session_lock:
                self._graph.rename_dim_params(exact)
                self._changed()

    # ---- running ----

    def initialize_inference_session(
            self, initializer: Callable[[str | bytes], Any] = _ort_session_initializer, *,
            options: ONNXRuntimeOptions | None = None) -> None:
        """Create the ONNX Runtime session with `initializer(model)`, model being bytes, or a
        path when the model is over 2 GB (saved with external data in a temporary folder that
        release() removes). `options` (an oxport.ONNXRuntimeOptions) configures the default
        initializer. ONNX Runtime's refusal raises OnnxRuntimeError."""
        if options is not None:
            if not isinstance(options, ONNXRuntimeOptions):
                raise TypeError(f"options must be an oxport.ONNXRuntimeOptions, got {type(options).__name__}")
            if initializer is not _ort_session_initializer:
                raise ValueError("options configure the default session: pass options or initializer, not both")
            initializer = functools.partial(_ort_session_initializer, options=options)
        with self._session_lock:
            self._initialize(initializer, options)

    def _initialize(self, initializer: Callable[[str | bytes], Any], options: ONNXRuntimeOptions | None) -> None:
        self.release()
        try:
            if self._graph.stats()["initializer_bytes"] > _LARGE_MODEL:
                self._tempdir = tempfile.TemporaryDirectory(prefix="oxport-")
                path = os.path.join(self._tempdir.name, "model.onnx")
                self.save(path, external_data=True)
                self._inference_session = initializer(path)
            else:
                self._inference_session = initializer(self._graph.serialize())
            self._runtime_options = options
        except Exception as e:
            if type(e).__module__.startswith("onnxruntime"):
                raise OnnxRuntimeError(f"ONNX Runtime could not load the exported model: {e}") from e
            raise

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        """Run the model in ONNX Runtime with the arguments the torch model takes.

        As in torch.onnx's ONNXProgram, `options=oxport.ONNXRuntimeOptions(...)` (recognised by its
        type, so a model argument named `options` still passes through) configures the session; a
        session made with other options is replaced."""
        options = None
        if isinstance(kwargs.get("options"), ONNXRuntimeOptions):
            options = kwargs.pop("options")
        feeds = self._feeds(args, kwargs)
        with self._session_lock:
            if self._inference_session is None or (options is not None and options is not self._runtime_options):
                self.initialize_inference_session(options=options)
            session = self._inference_session
        try:
            outputs = session.run_with_ort_values(None, feeds)
        except Exception as e:
            if type(e).__module__.startswith("onnxruntime"):
                raise OnnxRuntimeError(f"ONNX Runtime failed running the exported model: {e}") from e
            raise
        return tuple(_from_ort_value(o) for o in outputs)

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's arguments in the order of the export's: keyword arguments bound by name to
        forward's parameters, as eager binds them (`p(y=b, x=a)` is `p(a, b)`), the rest in the
        order the export's kwargs had. Flattening then gives the ONNX inputs' order."""
        if not kwargs:
            return args, kwargs
        signature = self._call_signature()
        if signature is None:
            return args, kwargs
        names, npos, keys = signature
        if len(args) > npos:
            return args, kwargs   # more positional arguments than exported: let the count check say so
        kwargs = dict(kwargs)
        positional = list(args)
        for name in names[len(args):npos]:
            # one left out was None at export, or is missing: the input count check says which
            positional.append(kwargs.pop(name, None))
        given = [n for n in names[:len(args)] if n in kwargs]
        if given:
            raise TypeError(f"argument {given[0]!r} given both by position and by name")
        bound = {k: kwargs.pop(k) for k in keys if k in kwargs}
        unknown = [k for k, v in kwargs.items() if v is not None]
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r}: the model was exported with "
                            f"arguments {names}")
        return tuple(positional), bound

    def _call_signature(self) -> tuple[list[str], int, list[str]] | None:
        """(forward's argument names, how many the export gave by position, the export's kwargs
        names in order), or None when the program does not say (forward(*args) names them
        args_0, args_1...)."""
        try:
            sig = self.exported_program.module_call_graph[0].signature
            names = list(sig.forward_arg_names) if sig is not None and sig.forward_arg_names else None
            spec = self.exported_program.call_spec.in_spec
            if names is None or spec is None:
                return None
            npos = spec.child(0).num_children
            keys = list(spec.child(1).context)
        except (AttributeError, IndexError, TypeError):
            return None
        if len(names) != npos + len(keys) or names[npos:] != keys:
            return None
        return names, npos, keys

    def _feeds(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        args, kwargs = self._bind(args, kwargs)
        flat = [a for a in _pytree.tree_leaves((args, kwargs)) if a is not None]
        tensors = [a for a in flat if isinstance(a, torch.Tensor)]
        if len(tensors) != len(self._input_names):
            raise ValueError(f"the model takes {len(self._input_names)} tensor inputs "
                             f"({', '.join(self._input_names)}), got {len(tensors)}")
        for name, t in zip(self._input_names, tensors):
            _check_input(name, t)
        return {name: _to_ort_value(t) for name, t in zip(self._input_names, tensors)}

    def release(self) -> None:
        """Drop the ONNX Runtime session and any temporary files it needed."""
        with self._session_lock:
            self._inference_session = None
            self._runtime_options = None
            if self._tempdir is not None:
                self._tempdir.cleanup()
                self._tempdir = None

    def __repr__(self) -> str:
        s = self._graph.stats()
        return (f"ONNXProgram(opset={s['opset']}, nodes={s['nodes']}, "
                f"initializers={s['initializers']}, inputs={self._input_names})")


def _unrunnable(t: torch.Tensor) -> str | None:
    """Why t's values cannot go to ONNX Runtime or into a weight: "meta" or "fake" (no data),
    "sparse" (not strided), "quantized"; None when they can."""
    if t.device.type == "meta":
        return "meta"
    if isinstance(t, torch._subclasses.FakeTensor):
        return "fake"
    if t.layout != torch.strided:
        return "sparse"
    return "quantized" if t.is_quantized else None


def _check_input(name: str, t: torch.Tensor) -> None:
    """A tensor ONNX Runtime cannot be given fails naming the input, before the run."""
    kind = _unrunnable(t)
    if kind in ("meta", "fake"):
        raise ValueError(f"input {name!r} is a {kind} tensor, which holds no data; running the model "
                         f"needs real tensors")
    if kind == "sparse":
        raise TypeError(f"input {name!r} is a {t.layout} tensor; the ONNX model takes dense "
                        f"tensors: pass {name}.to_dense()")
    if kind == "quantized":
        raise TypeError(f"input {name!r} is a quantized tensor ({t.dtype}), which ONNX Runtime cannot "
                        f"be given; pass {name}.dequantize() or its integer values (int_repr())")


def _to_ort_value(t: torch.Tensor) -> Any:
    """A torch tensor as an OrtValue. bfloat16, which numpy lacks, travels as its uint16 bits with
    the ONNX type named (ONNX Runtime 1.21+)."""
    import onnxruntime as ort
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(t.view(torch.uint16).numpy(), onnx_element_type=16)
    return ort.OrtValue.ortvalue_from_numpy(t.numpy())


def _from_ort_value(v: Any) -> torch.Tensor:
    """An OrtValue output as a torch tensor: bfloat16 through DLPack, the rest through numpy (a
    copy only when the array is not contiguous, since np.ascontiguousarray turns 0-d into (1,))."""
    if v.data_type() == "tensor(bfloat16)":
        return from_dlpack(v._get_c_value()).clone()
    a = v.numpy()
    return torch.from_numpy(a if a.flags.c_contiguous else a.copy())
