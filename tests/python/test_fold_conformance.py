"""The folding kernels (src/opt/fold.c) against ONNX's own backend node tests.

Every backend node test in the pinned onnx wheel whose model is one node of an op with a kernel is
run through `oxport._core.fold_node` with the node's attributes and the inputs of test_data_set_0,
and each output is compared with the expected one. A case the kernel declines (NotImplementedError:
a dtype or form it does not fold) is skipped with that reason; a wrong value, dtype or shape fails,
and so does a ValueError (the kernel calling a valid node malformed).
`test_every_kernel_passes_a_case` fails when a kernel skips all of its cases, so a kernel cannot
hide behind skips.
"""

import collections
import functools
import json
import os

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from oxport import _core

# The ops src/opt/fold.c has a kernel for (its `kernels[]` table).
KERNEL_OPS = frozenset(
    """Identity Cast Shape Size Gather GatherND Concat Reshape Squeeze Unsqueeze Slice Transpose Expand Tile Clip
    Where Range Add Sub Mul Div Mod Min Max Pow Equal Less LessOrEqual Greater GreaterOrEqual And Or Xor
    Neg Abs Sqrt Reciprocal Exp Log Floor Ceil Not Cos Sin ReduceSum ReduceProd ReduceMax ReduceMin
    CumSum""".split()
)

NODE_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")

# TensorProto data types oxport's IR holds with fixed-size elements (strings, float8, int4, ...
# not).
IR_DTYPES = frozenset(range(1, 17)) - {onnx.TensorProto.STRING}

# Results are rounded to the output's format: float16 and bfloat16 get one unit in the last place.
FLOAT_TOLERANCE = {
    onnx.TensorProto.FLOAT: (1e-5, 1e-6),
    onnx.TensorProto.DOUBLE: (1e-5, 1e-6),
    onnx.TensorProto.FLOAT16: (2**-10, 1e-6),
    onnx.TensorProto.BFLOAT16: (2**-7, 1e-6),
}

ATTR_KIND = {
    onnx.AttributeProto.INT: "int",
    onnx.AttributeProto.FLOAT: "float",
    onnx.AttributeProto.STRING: "string",
    onnx.AttributeProto.INTS: "ints",
    onnx.AttributeProto.FLOATS: "floats",
    onnx.AttributeProto.TENSOR: "tensor",
}


def _cases():
    """[(test name, op_type)] for the one-node backend tests of an op with a kernel."""
    if not os.path.isdir(NODE_DIR):
        return []
    found = []
    for name in sorted(os.listdir(NODE_DIR)):
        path = os.path.join(NODE_DIR, name, "model.onnx")
        if not os.path.exists(path):
            continue
        graph = onnx.load(path, load_external_data=False).graph
        if len(graph.node) != 1:
            continue
        node = graph.node[0]
        if node.domain in ("", "ai.onnx") and node.op_type in KERNEL_OPS:
            found.append((name, node.op_type))
    return found


CASES = _cases()


class Skip(Exception):
    """The case cannot be run through the kernels; the message says why."""


def _tensor_tuple(t):
    if t.data_type not in IR_DTYPES:
        raise Skip(f"dtype {onnx.TensorProto.DataType.Name(t.data_type)} has no place in oxport's IR")
    array = np.ascontiguousarray(numpy_helper.to_array(t))
    return (t.data_type, tuple(t.dims), array.tobytes())


def _attr_tuple(a):
    kind = ATTR_KIND.get(a.type)
    if kind is None:
        raise Skip(f"attribute {a.name} of type {onnx.AttributeProto.AttributeType.Name(a.type)}")
    value = helper.get_attribute_value(a)
    if kind == "tensor":
        value = _tensor_tuple(value)
    elif kind == "string":
        value = value.decode()
    else:
        value = list(value) if kind in ("ints", "floats") else value
    return (a.name, kind, value)


def _load_pbs(case_dir, prefix, values):
    tensors = []
    for i, value in enumerate(values):
        if not value.type.HasField("tensor_type"):
            raise Skip(f"{value.name} is not a tensor")
        t = onnx.TensorProto()
        with open(os.path.join(case_dir, "test_data_set_0", f"{prefix}_{i}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        tensors.append(t)
    return tensors


def _as_array(code, dims, data):
    return np.frombuffer(data, dtype=helper.tensor_dtype_to_np_dtype(code)).reshape(dims)


def _compare(name, k, got, want, tolerance):
    code, dims, data = got
    assert code == want.data_type, (
        f"output {k}: dtype {onnx.TensorProto.DataType.Name(code)}, "
        f"expected {onnx.TensorProto.DataType.Name(want.data_type)}"
    )
    assert tuple(dims) == tuple(want.dims), f"output {k}: shape {tuple(dims)}, expected {tuple(want.dims)}"
    actual, expected = _as_array(code, dims, data), numpy_helper.to_array(want)
    if code in FLOAT_TOLERANCE:
        rtol, atol = tolerance or FLOAT_TOLERANCE[code]
        np.testing.assert_allclose(
            actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True,
            err_msg=f"{name} output {k}",
        )
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=f"{name} output {k}")


@functools.cache
def run_case(name):
    """("pass" | "skip", reason) for one backend test; raises on a mismatch."""
    case_dir = os.path.join(NODE_DIR, name)
    model = onnx.load(os.path.join(case_dir, "model.onnx"), load_external_data=False)
    graph, node = model.graph, model.graph.node[0]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 20)
    tolerance = None
    if os.path.exists(os.path.join(case_dir, "data.json")):
        with open(os.path.join(case_dir, "data.json")) as f:
            data = json.load(f)
        if "rtol" in data or "atol" in data:
            tolerance = (data.get("rtol", 1e-3), data.get("atol", 1e-7))
    try:
        initializers = {t.name: t for t in graph.initializer}
        feeds = [v for v in graph.input if v.name not in initializers]
        by_name = dict(initializers)
        by_name.update(zip((v.name for v in feeds), _load_pbs(case_dir, "input", feeds)))
        inputs = [_tensor_tuple(by_name[i]) if i else None for i in node.input]
        attrs = [_attr_tuple(a) for a in node.attribute]
        expected = _load_pbs(case_dir, "output", graph.output)
        for t in expected:
            _tensor_tuple(t)   # outputs of a dtype the IR lacks: the case is out of reach
    except Skip as e:
        return ("skip", str(e))
    try:
        outputs = _core.fold_node(node.op_type, attrs, inputs, len(node.output), opset=opset)
    except NotImplementedError as e:
        return ("skip", f"kernel declines: {e}")
    assert len(outputs) == len(expected)
    for k, (got, want) in enumerate(zip(outputs, expected)):
        _compare(name, k, got, want, tolerance)
    return ("pass", "")


@pytest.mark.skipif(not CASES, reason="the onnx wheel carries no backend node tests")
@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_fold_conformance(name):
    status, reason = run_case(name)
    if status == "skip":
        pytest.skip(reason)


@pytest.mark.skipif(not CASES, reason="the onnx wheel carries no backend node tests")
def test_every_kernel_passes_a_case():
    passed, skipped, failed = collections.Counter(), collections.Counter(), collections.Counter()
    for name, op in CASES:
        try:
            status, _ = run_case(name)
        except Exception:   # the case's own test reports the failure
            failed[op] += 1
            continue
        (passed if status == "pass" else skipped)[op] += 1
    summary = ", ".join(f"{op} {passed[op]}/{skipped[op]}/{failed[op]}" for op in sorted(KERNEL_OPS))
    print(f"pass/skip/fail per op: {summary}")
    assert not (KERNEL_OPS - {op for _, op in CASES}), "ops with no backend case"
    none_pass = sorted(op for op in KERNEL_OPS if not passed[op])
    assert not none_pass, f"kernels that pass no backend case: {none_pass}"


def test_fold_node_rejects_bad_arguments():
    f32 = (onnx.TensorProto.FLOAT, (2,), np.zeros(2, np.float32).tobytes())
    with pytest.raises(ValueError, match="bytes given"):
        _core.fold_node("Add", [], [f32, (onnx.TensorProto.FLOAT, (3,), b"\0" * 8)], 1)
    with pytest.raises(ValueError, match="dtype code"):
        _core.fold_node("Add", [], [f32, (99, (2,), b"")], 1)
    with pytest.raises(TypeError):
        _core.fold_node("Add", [], [f32, "x"], 1)
    with pytest.raises(TypeError):
        _core.fold_node("Add", [("axis", "int")], [f32, f32], 1)
    with pytest.raises(ValueError, match="unknown kind"):
        _core.fold_node("Add", [("axis", "blob", 1)], [f32, f32], 1)
    with pytest.raises(ValueError, match="negative"):
        _core.fold_node("Add", [], [f32, (onnx.TensorProto.FLOAT, (-1,), b"")], 1)
    with pytest.raises(NotImplementedError):
        _core.fold_node("ConstantOfShape", [], [(onnx.TensorProto.INT64, (1,), np.int64([2]).tobytes())], 1)


def test_fold_node_reports_malformed_nodes():
    data = (onnx.TensorProto.FLOAT, (2, 3), np.arange(6, dtype=np.float32).tobytes())
    index = (onnx.TensorProto.INT64, (1,), np.int64([3]).tobytes())
    with pytest.raises(ValueError, match=r"Gather node 'fold_node': index out of range: 3 "):
        _core.fold_node("Gather", [("axis", "int", 1)], [data, index], 1)
    with pytest.raises(ValueError, match="axis 2 out of range"):
        _core.fold_node("Gather", [("axis", "int", 2)], [data, index], 1)
    with pytest.raises(ValueError, match="do not broadcast"):
        _core.fold_node("Add", [], [data, (onnx.TensorProto.FLOAT, (4,), b"\0" * 16)], 1)
    with pytest.raises(ValueError, match="inputs"):
        _core.fold_node("Add", [], [data], 1)
    with pytest.raises(ValueError, match="shape asks for 4"):
        _core.fold_node("Reshape", [], [data, (onnx.TensorProto.INT64, (1,), np.int64([4]).tobytes())], 1)
