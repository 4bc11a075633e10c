"""onnxscript functions for test_registry.py. onnxscript reads a function's source, so they live in
a module of their own rather than inside a test."""
import onnxscript
from onnxscript import FLOAT, opset22
from onnxscript import opset18 as op
from onnxscript import opset_ai_onnx_ml2 as ml2
from onnxscript.values import Opset

fns = Opset("oxport.test_fns", 1)   # the domain of functions that call one another


@onnxscript.script()
def scaled_relu_fn(x: FLOAT, alpha: float = 2.0) -> FLOAT:
    return op.Mul(op.Relu(x), op.CastLike(alpha, x))


@onnxscript.script()
def sigmoid_as_tanh_fn(x: FLOAT) -> FLOAT:
    """sigmoid(x) = (tanh(x / 2) + 1) / 2: replaces the built-in lowering of aten::sigmoid."""
    half = op.CastLike(0.5, x)
    return op.Mul(op.Add(op.Tanh(op.Mul(x, half)), op.CastLike(1.0, x)), half)


@onnxscript.script(fns)
def times(x: FLOAT, k: float = 1.0) -> FLOAT:
    return op.Mul(x, op.CastLike(k, x))


@onnxscript.script(fns)
def relu_then_times(x: FLOAT, alpha: float) -> FLOAT:
    """Calls `times` with its own attribute (a reference resolved through two calls): alpha has no
    default, so the call site must give it."""
    return times(op.Relu(x), k=alpha)


@onnxscript.script(fns)
def scaled_relu_nested(x: FLOAT, alpha: float = 2.0) -> FLOAT:
    """scaled_relu through two levels of nested functions."""
    return op.Identity(relu_then_times(x, alpha=alpha))


@onnxscript.script()
def scaled_relu_opset22(x: FLOAT, alpha: float = 2.0) -> FLOAT:
    """Imports opset 22: newer than an opset-20 model."""
    return opset22.Mul(opset22.Relu(x), opset22.CastLike(alpha, x))


@onnxscript.script()
def relu_and_neg(x: FLOAT) -> (FLOAT, FLOAT):
    """Two outputs."""
    return op.Relu(x), op.Neg(x)


@onnxscript.script()
def binarize_ml2(x: FLOAT, alpha: float = 0.0) -> FLOAT:
    """Imports ai.onnx.ml at version 2, which the model cannot declare (other domains are version
    1)."""
    return ml2.Binarizer(x, threshold=alpha)
