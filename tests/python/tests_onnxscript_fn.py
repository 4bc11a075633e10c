"""An onnxscript function for test_registry.py. onnxscript reads a function's source, so it lives
in a module of its own rather than inside a test."""
import onnxscript
from onnxscript import FLOAT
from onnxscript import opset18 as op


@onnxscript.script()
def scaled_relu_fn(x: FLOAT, alpha: float = 2.0) -> FLOAT:
    return op.Mul(op.Relu(x), op.CastLike(alpha, x))
