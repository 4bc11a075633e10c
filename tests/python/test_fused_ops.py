"""Fused ONNX ops the optimizer or the lowering emits where the opset has them, checked against
eager, and their absence below that opset."""
import collections

import pytest
import torch
import torch.nn.functional as F

import oxport


class RMSNorm(torch.nn.Module):   # what Hugging Face's Llama, Mistral and Qwen do by hand
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(dim))
        self.eps = eps

    def forward(self, x):
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class Norms(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = RMSNorm(16)
        self.proj = torch.nn.Linear(16, 16)

    def forward(self, x):
        y = self.a(x)
        z = F.rms_norm(self.proj(y), (16,), eps=1e-5)      # no weight: a scale of ones
        return y + z, self.a(z)


def _ops(program):
    return collections.Counter(n.op_type for n in program.model_proto.graph.node)


@pytest.mark.parametrize("opset", [18, 23])
def test_rms_norm(opset):
    torch.manual_seed(0)
    model, x = Norms().eval(), torch.randn(2, 5, 16)
    program = oxport.export(model, (x,), opset_version=opset, verbose=False)
    ops = _ops(program)
    if opset >= 23:
        assert ops["RMSNormalization"] == 3
        assert not {"ReduceMean", "Sqrt", "Reciprocal", "Pow"} & set(ops)
    else:
        assert "RMSNormalization" not in ops
    with torch.no_grad():
        want = model(x)
    for got, w in zip(program(x), want):
        torch.testing.assert_close(got, w, rtol=1e-5, atol=1e-5)


def test_rms_norm_over_a_dynamic_dim():
    """The normalized (last) dim must be static for the scale of ones; other dims may vary."""
    model, x = Norms().eval(), torch.randn(2, 5, 16)
    batch = torch.export.Dim("batch")
    program = oxport.export(model, (x,), opset_version=23, dynamic_shapes=({0: batch},), verbose=False)
    assert _ops(program)["RMSNormalization"] == 3
    x3 = torch.randn(3, 5, 16)
    with torch.no_grad():
        want = model(x3)
    for got, w in zip(program(x3), want):
        torch.testing.assert_close(got, w, rtol=1e-5, atol=1e-5)


def test_a_norm_over_another_axis_is_left_alone():
    class M(torch.nn.Module):
        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-6)

    x = torch.randn(2, 5, 16)
    program = oxport.export(M(), (x,), opset_version=23, verbose=False)
    assert "RMSNormalization" not in _ops(program)
    torch.testing.assert_close(program(x)[0], M()(x))
