"""ExportOptions, DiagnosticOptions and dynamo_export: torch.onnx's older entry point."""
from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ._registry import OnnxRegistry


@dataclass
class DiagnosticOptions:
    """verbosity_level: the logging level of the "oxport" logger during export.
    warnings_as_errors: an export warning (OnnxExporterWarning) raises instead."""
    verbosity_level: int = logging.INFO
    warnings_as_errors: bool = False


class ONNXRuntimeOptions:
    """How ONNX Runtime runs the exported model, as torch.onnx.ONNXRuntimeOptions: given to
    `ONNXProgram.__call__(..., options=...)` (where torch.onnx's ONNXProgram took it) or to
    `initialize_inference_session(options=...)`, it configures the default session.

    session_options: an onnxruntime.SessionOptions, or a sequence holding one (torch.onnx's
        annotation is a sequence; ONNX Runtime takes one).
    execution_providers: provider names, or (name, options) pairs, in order of preference.
        None: CPUExecutionProvider.
    execution_provider_options: one dict per provider in execution_providers.
    """

    def __init__(self, *, session_options=None, execution_providers=None, execution_provider_options=None):
        if session_options is not None and not hasattr(session_options, "graph_optimization_level"):
            items = list(session_options)
            if len(items) != 1:
                raise ValueError(f"session_options: ONNX Runtime takes one SessionOptions, got {len(items)}")
            session_options = items[0]
        if isinstance(execution_providers, str):
            execution_providers = [execution_providers]
        if execution_provider_options is not None:
            execution_provider_options = list(execution_provider_options)
            if execution_providers is None or len(execution_provider_options) != len(execution_providers):
                raise ValueError("execution_provider_options needs one dict per entry of execution_providers")
        self.session_options = session_options
        self.execution_providers = list(execution_providers) if execution_providers is not None else None
        self.execution_provider_options = execution_provider_options

    def __repr__(self) -> str:
        return (f"ONNXRuntimeOptions(session_options={self.session_options!r}, execution_providers="
                f"{self.execution_providers!r}, execution_provider_options={self.execution_provider_options!r})")


class ExportOptions:
    """Options of dynamo_export, as torch.onnx.ExportOptions."""

    def __init__(self, *, dynamic_shapes: Any = None, fake_context: Any = None,
                 onnx_registry: OnnxRegistry | None = None,
                 diagnostic_options: DiagnosticOptions | None = None):
        if onnx_registry is not None and not isinstance(onnx_registry, OnnxRegistry):
            raise TypeError(f"onnx_registry must be an oxport.OnnxRegistry, got {type(onnx_registry).__name__}")
        if diagnostic_options is not None and not isinstance(diagnostic_options, DiagnosticOptions):
            raise TypeError("diagnostic_options must be an oxport.DiagnosticOptions")
        self.dynamic_shapes = dynamic_shapes
        self.fake_context = fake_context
        self.onnx_registry = onnx_registry or OnnxRegistry()
        self.diagnostic_options = diagnostic_options or DiagnosticOptions()


def dynamo_export(model, /, *model_args, export_options: ExportOptions | None = None, **model_kwargs):
    """Deprecated as in torch.onnx: use oxport.export(model, args, kwargs=..., dynamo=True)."""
    from ._export import export

    warnings.warn("oxport.dynamo_export is deprecated, as torch.onnx.dynamo_export is: use "
                  "oxport.export(model, args, kwargs=kwargs) instead", DeprecationWarning, stacklevel=2)
    options = export_options or ExportOptions()
    if not isinstance(options, ExportOptions):
        raise TypeError(f"export_options must be an oxport.ExportOptions, got {type(options).__name__}")
    dynamic_shapes = options.dynamic_shapes
    if dynamic_shapes is True:
        # torch.onnx's ExportOptions(dynamic_shapes=True): every input dim dynamic.
        dynamic_shapes = tuple({d: torch.export.Dim.AUTO for d in range(a.dim())}
                               if isinstance(a, torch.Tensor) else None for a in model_args)
    elif dynamic_shapes is False:
        dynamic_shapes = None
    registry = options.onnx_registry
    fake = options.fake_context
    if fake is not None:
        from torch._subclasses.fake_tensor import FakeTensorMode
        if not isinstance(fake, FakeTensorMode):
            raise TypeError(f"ExportOptions.fake_context must be what `with oxport.enable_fake_mode() as ctx` "
                            f"gives, got {type(fake).__name__}")
    context = fake if fake is not None else contextlib.nullcontext()
    with context:   # the export runs in the model's fake mode, as torch.onnx's did
        return export(model, model_args, kwargs=model_kwargs or None, dynamic_shapes=dynamic_shapes,
                      opset_version=registry.opset_version,
                      custom_translation_table=None, _translations=registry._translations(),
                      _diagnostics=options.diagnostic_options)
