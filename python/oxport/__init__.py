"""oxport: PyTorch → ONNX through torch.export, with the lowering, optimizer and serializer in C.

    import oxport
    onnx_program = oxport.export(model, (x,))
    onnx_program.save("model.onnx")
    outputs = onnx_program(x)
"""
from ._dynamo_export import dynamo_export
from ._errors import (
    CaptureError,
    LoweringError,
    OnnxExporterError,
    OnnxExporterWarning,
    OnnxRuntimeError,
    UnsupportedOpError,
)
from ._export import export
from ._fake import enable_fake_mode
from ._options import DiagnosticOptions, ExportOptions, ONNXRuntimeOptions
from ._program import ONNXProgram
from ._registry import OnnxRegistry, Value, op
from ._verify import VerificationInfo

__all__ = ["CaptureError", "DiagnosticOptions", "ExportOptions", "LoweringError", "ONNXProgram",
           "ONNXRuntimeOptions", "OnnxExporterError", "OnnxExporterWarning", "OnnxRegistry",
           "OnnxRuntimeError", "UnsupportedOpError", "Value", "VerificationInfo", "dynamo_export",
           "enable_fake_mode", "export", "op"]
