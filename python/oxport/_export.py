"""oxport.export: the entry point, with torch.onnx.export's arguments (dynamo=True path)."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import torch
from torch.export import ExportedProgram
from torch.utils import _pytree

from . import _core, _dynamic, _fake, _registry
from ._capture import capture, decompose, draft_export_requested, functionalize_inplace, needs_decomposition
from ._dtypes import TORCH_TO_ONNX
from ._errors import LoweringError, OnnxExporterError, OnnxExporterWarning, UnsupportedOpError, format_unsupported
from ._options import DiagnosticOptions
from ._program import ONNXProgram
from ._report import Report
from ._verify import verify as verify_outputs
from ._walk import walk

if TYPE_CHECKING:
    import cProfile

_P = ParamSpec("_P")
_R = TypeVar("_R")

logger = logging.getLogger("oxport")

DEFAULT_OPSET = 20
MIN_OPSET, MAX_OPSET = 18, 24

try:
    from importlib.metadata import version as _version
    _VERSION = _version("oxport")
except Exception:  # not installed as a distribution (e.g. running from a source tree)
    _VERSION = "0.1.0"


class _Stages:
    """Times each stage, prints `[oxport] <stage> <seconds> s` unless quiet, and tells the
    report."""

    def __init__(self, verbose: bool, report: Report) -> None:
        self.verbose = verbose
        self.report = report
        self.timings: dict[str, float] = {}

    def run(self, stage: str, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        t0 = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            self.report.stage(stage, "failed", time.perf_counter() - t0)
            raise
        dt = time.perf_counter() - t0
        self.report.stage(stage, "ok", dt)
        self.timings[stage] = self.timings.get(stage, 0.0) + dt
        if self.verbose:
            print(f"[oxport] {stage} {dt:.2f} s", file=sys.stderr, flush=True)
        logger.info("%s took %.3f s", stage, dt)
        return result


def _check_arguments(model: Any, args: Any, kwargs: Any, f: Any, input_names: Any, output_names: Any,
                     opset_version: Any, dynamo: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Bad arguments fail here, before any capture, naming the argument."""
    if dynamo is not True:
        raise ValueError("dynamo=False: oxport exports through TorchDynamo (torch.export) only; "
                         "pass dynamo=True or leave it out, or use torch.onnx.export for TorchScript")
    if not isinstance(model, (torch.nn.Module, ExportedProgram)):
        raise TypeError(f"model must be a torch.nn.Module or a torch.export.ExportedProgram, "
                        f"got {type(model).__name__}")
    if isinstance(args, torch.Tensor):
        args = (args,)
    elif isinstance(args, list):
        args = tuple(args)
    elif not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple of inputs or a single tensor, got {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs must be a dict, got {type(kwargs).__name__}")
    if f is not None and not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"f must be a file path, got {type(f).__name__}")
    for arg_name, names in (("input_names", input_names), ("output_names", output_names)):
        if names is None:
            continue
        if isinstance(names, str) or not isinstance(names, Sequence) \
                or not all(isinstance(n, str) and n for n in names):
            raise TypeError(f"{arg_name} must be a list of non-empty strings, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"{arg_name} holds a name twice: {list(names)}")
    with_paths, _ = _pytree.tree_flatten_with_path((args, kwargs or {}))
    leaves = [leaf for _, leaf in with_paths]
    for i, (path, leaf) in enumerate(with_paths):
        if not isinstance(leaf, torch.Tensor):
            continue
        where = ("args" if path[0] == _pytree.SequenceKey(0) else "kwargs") + _pytree.keystr(path[1:])
        if leaf.layout != torch.strided:
            raise TypeError(f"input {i} (in args/kwargs order), {where}, is a {leaf.layout} tensor: "
                            f"ONNX inputs are dense tensors. Pass it dense ({where}.to_dense()), "
                            f"or export a model that takes the dense tensor")
        if leaf.dtype not in TORCH_TO_ONNX:
            raise TypeError(f"input {i} (in args/kwargs order), {where}, has dtype {leaf.dtype}, "
                            f"which ONNX cannot carry")
    ntensors = sum(isinstance(leaf, torch.Tensor) for leaf in leaves)
    if input_names is not None and isinstance(model, torch.nn.Module) and len(input_names) > ntensors:
        raise ValueError(f"input_names has {len(input_names)} names but the inputs hold {ntensors} "
                         f"tensor{'s' if ntensors != 1 else ''}: {list(input_names)}")
    if isinstance(opset_version, bool) or not isinstance(opset_version, int):
        raise TypeError(f"opset_version must be an int, got {type(opset_version).__name__}")
    if not MIN_OPSET <= opset_version <= MAX_OPSET:
        raise ValueError(f"opset_version={opset_version} is not supported: oxport emits opsets "
                         f"{MIN_OPSET} to {MAX_OPSET}")
    return args, dict(kwargs or {})


def export(
    model: torch.nn.Module | ExportedProgram,
    args: tuple[Any, ...] | torch.Tensor = (),
    f: str | os.PathLike[str] | None = None,
    *,
    kwargs: dict[str, Any] | None = None,
    dynamic_shapes: dict[str, Any] | tuple[Any, ...] | list[Any] | None = None,
    dynamic_axes: Mapping[str, Any] | None = None,
    export_params: bool = True,
    verbose: bool | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    opset_version: int | None = None,
    dynamo: bool = True,
    external_data: bool = True,
    optimize: bool = True,
    keep_initializers_as_inputs: bool = False,
    custom_translation_table: dict[Any, Callable[..., Any] | Sequence[Callable[..., Any]]] | None = None,
    report: bool = False,
    verify: bool = False,
    verify_atol: float = 1e-4,
    verify_rtol: float = 1e-3,
    profile: bool = False,
    dump_exported_program: bool = False,
    artifacts_dir: str | os.PathLike[str] = ".",
    draft_export: bool | None = None,
    _translations: dict[str, Callable[..., Any]] | None = None,
    _diagnostics: DiagnosticOptions | None = None,
) -> ONNXProgram:
    """Export `model` to ONNX. Takes the arguments of torch.onnx.export(..., dynamo=True).

    Returns an ONNXProgram; when `f` is given the model is also saved there (weights as external
    data when `external_data` is true, as torch.onnx does). `export_params=False` saves without
    weights. `verbose=False` silences the per-stage progress lines. `dynamic_shapes` takes what
    torch.export takes plus strings naming an axis; named axes appear as dim_param in the model.
    The legacy `dynamic_axes` is converted to dynamic_shapes, with a warning.

    `report=True` writes `onnx_export_<timestamp>_<status>.md` to `artifacts_dir`, on success and on
    failure (the error then names the file). `verify=True` runs ONNX Runtime on the example inputs
    and compares with eager (`program.verification`), warning for an output whose max abs difference
    passes `verify_atol + verify_rtol * max|eager output|`. `profile=True` adds a profile of the
    export to the report; `dump_exported_program=True` saves the ExportedProgram as a .pt2 file.
    """
    opset = DEFAULT_OPSET if opset_version is None else opset_version
    args, kwargs = _check_arguments(model, args, kwargs, f, input_names, output_names, opset, dynamo)
    if dynamic_axes is not None:
        if dynamic_shapes is not None:
            raise ValueError("pass dynamic_shapes or dynamic_axes, not both")
        if not isinstance(dynamic_axes, Mapping):
            raise TypeError(f"dynamic_axes must be a dict, got {type(dynamic_axes).__name__}")
        dynamic_shapes = _dynamic.from_dynamic_axes(model, args, kwargs, dynamic_axes, input_names)
    torch_shapes, axis_names = _dynamic.prepare(model, args, kwargs, dynamic_shapes)
    use_draft = draft_export_requested(draft_export)
    _check_tolerances(verify_atol, verify_rtol)
    if report or dump_exported_program:
        _check_artifacts_dir(artifacts_dir)
    translations = dict(_translations or {})
    translations.update(_registry.table_to_translations(custom_translation_table))
    rep = Report(report, artifacts_dir)
    options: dict[str, Any] = dict(
        f=f, opset=opset, shapes=(dynamic_shapes, torch_shapes, axis_names),
        translations=translations, input_names=input_names, output_names=output_names,
        export_params=export_params, verbose=verbose, external_data=external_data,
        optimize=optimize, keep_initializers_as_inputs=keep_initializers_as_inputs,
        verify=(verify_atol, verify_rtol) if verify else None,
        dump_exported_program=dump_exported_program, artifacts_dir=artifacts_dir,
        draft_export=use_draft)
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
    try:
        with _diagnostics_scope(_diagnostics):
            if profiler:
                profiler.enable()
            try:
                program = _export(model, args, kwargs, rep, **options)
            finally:
                if profiler:
                    profiler.disable()
                    rep.profile = _profile_text(profiler)
    except Exception as e:
        if report:
            rep.error = f"{type(e).__name__}: {e}"
            rep.unsupported = getattr(e, "unsupported", [])
            path = rep.write("failure")
            note = f"The export report: {path}"
            if isinstance(e, OnnxExporterError) and e.args:
                e.args = (f"{e.args[0]}\n{note}",) + e.args[1:]
            else:
                e.add_note(note)
        raise
    if report:
        try:
            program.report_path = rep.write("success")
        except OSError as e:   # the export succeeded: a report that cannot be written must not lose it
            warnings.warn(f"export succeeded but its report could not be written to artifacts_dir="
                          f"{os.fspath(artifacts_dir)!r}: {e}", OnnxExporterWarning, stacklevel=2)
    return program


def _check_tolerances(atol: Any, rtol: Any) -> None:
    for name, value in (("verify_atol", atol), ("verify_rtol", rtol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_artifacts_dir(artifacts_dir: Any) -> None:
    """artifacts_dir must be a folder, or a path where one can be made: checked before the export,
    since the report is written after it."""
    if not isinstance(artifacts_dir, (str, os.PathLike)):
        raise TypeError(f"artifacts_dir must be a folder path, got {type(artifacts_dir).__name__}")
    path = os.fspath(artifacts_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"artifacts_dir={path!r} is a file, not a folder: the report and the "
                         f"exported program are written into a folder")
    parent = path
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent.rstrip(os.sep))
    if parent and not os.path.isdir(parent):
        raise ValueError(f"artifacts_dir={path!r} cannot be made: {parent!r} is a file")


def _profile_text(profiler: cProfile.Profile) -> str:
    import io
    import pstats
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(30)
    return buf.getvalue()


@contextlib.contextmanager
def _diagnostics_scope(options: DiagnosticOptions | None) -> Iterator[None]:
    """DiagnosticOptions in effect: the "oxport" logger's level, warnings raised as errors."""
    if options is None:
        yield
        return
    logger = logging.getLogger("oxport")
    level = logger.level
    logger.setLevel(options.verbosity_level)
    try:
        with warnings.catch_warnings():
            if options.warnings_as_errors:
                warnings.simplefilter("error", OnnxExporterWarning)
            yield
    finally:
        logger.setLevel(level)


def _export(model: torch.nn.Module | ExportedProgram, args: tuple[Any, ...], kwargs: dict[str, Any],
            rep: Report, *, f: str | os.PathLike[str] | None, opset: int,
            shapes: tuple[Any, Any, _dynamic.AxisNames],
            translations: dict[str, Callable[..., Any]], input_names: Sequence[str] | None,
            output_names: Sequence[str] | None, export_params: bool, verbose: bool | None,
            external_data: bool, optimize: bool, keep_initializers_as_inputs: bool,
            verify: tuple[float, float] | None, dump_exported_program: bool,
            artifacts_dir: str | os.PathLike[str], draft_export: bool) -> ONNXProgram:
    """The stages, once the arguments are checked. shapes: (as given, for torch.export, names)."""
    dynamic_shapes, torch_shapes, axis_names = shapes
    stages = _Stages(verbose is not False, rep)

    ep, strategy = stages.run("capture", capture, model, args, kwargs, torch_shapes, rep.capture_attempts,
                               draft_export)
    rep.strategy = strategy
    if dump_exported_program:
        os.makedirs(artifacts_dir, exist_ok=True)
        torch.export.save(ep, os.path.join(artifacts_dir, f"exported_program_{time.strftime('%Y%m%d_%H%M%S')}.pt2"))
    dim_names = (_dynamic.dim_names(model, args, kwargs, dynamic_shapes, axis_names, ep)
                 if isinstance(model, torch.nn.Module) else {})
    ep = functionalize_inplace(ep)
    missing = needs_decomposition(ep, opset, translations)
    if missing:
        logger.info("decomposing because of: %s", ", ".join(missing))
        ep = stages.run("decompose", decompose, ep, opset, translations)
    rep.note_program(ep)
    walked = stages.run("walk", walk, ep, list(input_names) if input_names is not None else None,
                        dim_names, translations)

    names = None
    if output_names is not None:
        if len(output_names) > len(walked.outputs):
            raise ValueError(f"output_names has {len(output_names)} names but the model has "
                             f"{len(walked.outputs)} outputs")
        names = list(output_names) + [None] * (len(walked.outputs) - len(output_names))
    metadata = {"pkg.oxport.version": _VERSION, "pkg.torch.version": torch.__version__}
    try:
        graph = stages.run("lower", _core.lower, opset, walked.inputs, walked.initializers, walked.nodes,
                           walked.outputs, names, walked.nvalues, metadata)
    except _core.UnsupportedError as e:
        items = e.args[1] if len(e.args) > 1 else []
        raise UnsupportedOpError(format_unsupported(items), items) from None
    except _core.LoweringError as e:
        raise LoweringError(str(e)) from None
    except _core.Error as e:
        raise OnnxExporterError(str(e)) from None

    program = ONNXProgram(graph, ep, input_names=walked.input_names, capture_strategy=strategy,
                          weights=[(w[1], w[2], w[3]) for w in walked.initializers])
    if optimize:
        stages.run("optimize", program.optimize)
        logger.debug("optimizer: %s", program.pass_stats)
    if rep.enabled:
        rep.note_graph(graph)
    if graph.has_fake_weights() and isinstance(model, torch.nn.Module):
        # inside enable_fake_mode: buffers no state_dict carries (rotary inv_freq) are computed now
        initializer_names = set(graph.initializer_names())
        computed = {k: v for k, v in _fake.computed_buffers(model).items() if k in initializer_names}
        if computed:
            from torch._subclasses.fake_tensor import unset_fake_temporarily
            with unset_fake_temporarily():
                program.apply_weights(computed)
    if verify:
        atol, rtol = verify
        program.verification = stages.run("verify", verify_outputs, program, model, args, kwargs,
                                          atol=atol, rtol=rtol)
        rep.verification = program.verification
    if f is not None:
        stages.run("save", program.save, f, include_initializers=export_params,
                   keep_initializers_as_inputs=keep_initializers_as_inputs,
                   external_data=external_data)
    program.timings = stages.timings
    return program
