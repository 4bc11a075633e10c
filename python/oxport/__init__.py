"""oxport: PyTorch → ONNX through torch.export, with the lowering, optimizer and serializer in C.

    import oxport
    onnx_program = oxport.export(model, (x,))
    onnx_program.save("model.onnx")
    outputs = onnx_program(x)
"""
from ._errors import (CaptureError, LoweringError, OnnxExporterError, OnnxExporterWarning,
                      OnnxRuntimeError, UnsupportedOpError)
from ._dynamo_export import dynamo_export
from ._export import export
from ._fake import enable_fake_mode
from ._options import DiagnosticOptions, ExportOptions, ONNXRuntimeOptions
from ._program import ONNXProgram
from ._registry import OnnxRegistry, Value, op
from ._verify import VerificationInfo

__all__ = ["export", "enable_fake_mode", "dynamo_export", "ExportOptions", "DiagnosticOptions",
           "ONNXRuntimeOptions", "OnnxExporterWarning",
           "ONNXProgram", "VerificationInfo", "OnnxRegistry", "Value", "op", "OnnxExporterError", "CaptureError", "UnsupportedOpError",
           "LoweringError", "OnnxRuntimeError"]
