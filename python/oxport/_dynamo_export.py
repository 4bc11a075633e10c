"""dynamo_export: torch.onnx's older entry point, kept as torch.onnx keeps it (deprecated)."""
from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch

from ._export import export
from ._options import ExportOptions
from ._program import ONNXProgram


def dynamo_export(model: torch.nn.Module | torch.export.ExportedProgram, /, *model_args: Any,
                  export_options: ExportOptions | None = None, **model_kwargs: Any) -> ONNXProgram:
    """Deprecated as in torch.onnx: use oxport.export(model, args, kwargs=..., dynamo=True)."""
    warnings.warn("oxport.dynamo_export is deprecated, as torch.onnx.dynamo_export is: use "
                  "oxport.export(model, args, kwargs=kwargs) instead", DeprecationWarning, stacklevel=2)
    options = export_options or ExportOptions()
    if not isinstance(options, ExportOptions):
        raise TypeError(f"export_options must be an oxport.ExportOptions, got {type(options).__name__}")
    dynamic_shapes = options.dynamic_shapes
    if dynamic_shapes is True:
        # torch.onnx's ExportOptions(dynamic_shapes=True): every input dim dynamic.
        dynamic_shapes = tuple(dict.fromkeys(range(a.dim()), torch.export.Dim.AUTO)
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
