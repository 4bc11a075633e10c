"""The OpInfo coverage harness (tools/opinfo.py) itself: its per-sample function, run in-process on
a handful of ops for oxport only, passes what oxport lowers and reports what it gets wrong."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import opinfo  # noqa: E402

OPS = ["add", "mul", "matmul", "softmax", "cat", "where", "nn.functional.relu", "nn.functional.linear"]


@pytest.fixture(scope="module")
def ops():
    return opinfo.load_ops()


@pytest.mark.parametrize("key", OPS)
def test_oxport_passes(ops, key):
    op = ops[key]
    samples = opinfo.get_samples(op, "float32", 2)
    assert samples
    for sample in samples:
        res = opinfo.run_sample(op, "float32", sample, ["oxport"])
        assert "eager_error" not in res, res
        assert res["oxport"]["status"] == "pass", (key, sample, res)


def test_tensors_in_lists_become_inputs(ops):
    sample = opinfo.get_samples(ops["cat"], "float32", 1)[0]
    module, args = opinfo.build_module(ops["cat"].op, sample)
    assert len(args) == len(sample.input) >= 2
    torch.testing.assert_close(module(*args), torch.cat(sample.input, *sample.args, **sample.kwargs))


def test_wrong_values_are_a_mismatch(ops):
    op = ops["add"]
    sample = opinfo.get_samples(op, "float32", 1)[0]
    module, args = opinfo.build_module(op.op, sample)
    expected = [t + 1 for t in opinfo.eager(module, args)]
    res = opinfo.run_exporter("oxport", module, args, expected)
    assert res["status"] == "mismatch", res
    assert res["max_abs_diff"] == pytest.approx(1.0)


def test_wrong_dtype_is_a_mismatch():
    res = opinfo.compare([torch.ones(2, 3)], [torch.ones(2, 3, dtype=torch.float64)])
    assert res["status"] == "mismatch"


def test_random_ops_compare_shape_and_dtype():
    assert opinfo.compare([torch.randn(2, 3)], [torch.randn(2, 3)], random=True)["status"] == "pass"
    assert opinfo.compare([torch.randn(2, 3)], [torch.randn(3, 2)], random=True)["status"] == "mismatch"
    assert opinfo.compare([torch.randn(2, 3)], [torch.randn(2, 3)])["status"] == "mismatch"


def test_unsupported_op_is_reported():
    @torch.library.custom_op("oxport_opinfo_test::twice", mutates_args=())
    def twice(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    @twice.register_fake
    def _(x):
        return torch.empty_like(x)

    class M(torch.nn.Module):
        def forward(self, x):
            return twice(x)

    x = torch.randn(3)
    res = opinfo.run_exporter("oxport", M(), (x,), [x * 2])
    assert res["status"] == "unsupported", res
    assert res["unsupported"] == ["oxport_opinfo_test::twice.default"]


def test_fold_takes_the_first_failure_and_drops_unexportable_samples():
    samples = {0: {"oxport": {"status": "pass"}, "torch_onnx": {"status": "pass"}},
               1: {"oxport": {"status": "capture", "message": "x"},
                   "torch_onnx": {"status": "capture", "message": "y"}},
               2: {"oxport": {"status": "mismatch", "message": "m", "max_abs_diff": 2.0},
                   "torch_onnx": {"status": "pass"}}}
    rec = opinfo.fold("add", "float32", samples, 3, None, 0.0)
    assert rec["tested_samples"] == 2 and rec["not_exportable_samples"] == 1
    assert rec["oxport"]["status"] == "mismatch" and rec["oxport"]["sample"] == 2
    assert rec["torch_onnx"] == {"status": "pass"}
    rec = opinfo.fold("add", "float32", {0: samples[1]}, 1, None, 0.0)
    assert rec["status"] == "not_exportable"
