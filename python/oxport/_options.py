"""The option types: ExportOptions and DiagnosticOptions (of dynamo_export, torch.onnx's older entry
point) and ONNXRuntimeOptions (of ONNXProgram's session). Types only, so that both the program and
the entry points can import them."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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

    def __init__(self, *, session_options: Any = None,
                 execution_providers: str | Sequence[str | tuple[str, dict[str, Any]]] | None = None,
                 execution_provider_options: Sequence[dict[str, Any]] | None = None) -> None:
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
                 diagnostic_options: DiagnosticOptions | None = None) -> None:
        if onnx_registry is not None and not isinstance(onnx_registry, OnnxRegistry):
            raise TypeError(f"onnx_registry must be an oxport.OnnxRegistry, got {type(onnx_registry).__name__}")
        if diagnostic_options is not None and not isinstance(diagnostic_options, DiagnosticOptions):
            raise TypeError("diagnostic_options must be an oxport.DiagnosticOptions")
        self.dynamic_shapes = dynamic_shapes
        self.fake_context = fake_context
        self.onnx_registry = onnx_registry or OnnxRegistry()
        self.diagnostic_options = diagnostic_options or DiagnosticOptions()
