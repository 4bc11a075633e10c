"""oxport: PyTorch → ONNX through torch.export, with the lowering, optimizer and serializer in C.

    import oxport
    onnx_program = oxport.export(model, (x,))
    onnx_program.save("model.onnx")
    outputs = onnx_program(x)
"""
from ._errors import (CaptureError, LoweringError, OnnxExporterError, OnnxRuntimeError,
                      UnsupportedOpError)
from ._export import export
from ._program import ONNXProgram

__all__ = ["export", "ONNXProgram", "OnnxExporterError", "CaptureError", "UnsupportedOpError",
           "LoweringError", "OnnxRuntimeError"]
