"""Batch norm with batch statistics (training=True, no running stats, _batch_norm_with_update)
exported with oxport, run by ONNX Runtime and compared with eager."""

import copy

import pytest
import torch

import oxport


class TrainBN(torch.nn.Module):
    def __init__(self, c, affine=True, track=True):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(c, affine=affine, track_running_stats=track, momentum=0.3)
        if affine:
            with torch.no_grad():
                self.bn.weight.uniform_(0.5, 1.5)
                self.bn.bias.uniform_(-1, 1)

    def forward(self, x):
        y = self.bn(x)
        if self.bn.track_running_stats:
            return y, self.bn.running_mean + 0, self.bn.running_var + 0
        return (y,)


def _check(model, x):
    exported_model = copy.deepcopy(model).train()
    eager_model = copy.deepcopy(model).train()
    prog = oxport.export(exported_model, (x,))
    got = prog(x)
    want = eager_model(x)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(torch.as_tensor(g), w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_updates_running_stats(affine):
    torch.manual_seed(0)
    _check(TrainBN(3, affine=affine), torch.randn(4, 3, 5, 6) * 2 + 1)


def test_batch_norm_without_running_stats():
    torch.manual_seed(1)
    _check(TrainBN(3, track=False), torch.randn(2, 3, 4, 4))


class Inst(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.instance_norm(x, eps=1e-5)


def test_instance_norm():
    torch.manual_seed(2)
    x = torch.randn(2, 3, 7)
    prog = oxport.export(Inst(), (x,))
    torch.testing.assert_close(torch.as_tensor(prog(x)[0]), Inst()(x), rtol=1e-4, atol=1e-4)


class AddProduct(torch.nn.Module):
    """beta * s + alpha * (a @ b) through one of torch's add* products."""

    def __init__(self, fn, beta, alpha):
        super().__init__()
        self.fn, self.beta, self.alpha = fn, beta, alpha

    def forward(self, s, a, b):
        return self.fn(s, a, b, beta=self.beta, alpha=self.alpha)


PRODUCTS = {   # fn, shapes of (input, a, b), dtype
    "addmm": (torch.addmm, ((3, 5), (3, 4), (4, 5)), torch.float32),   # Gemm
    "addmm_f16": (torch.addmm, ((3, 5), (3, 4), (4, 5)), torch.float16),   # MatMul
    "baddbmm": (torch.baddbmm, ((2, 3, 5), (2, 3, 4), (2, 4, 5)), torch.float32),
    "addmv": (torch.addmv, ((3,), (3, 4), (4,)), torch.float32),
    "addbmm": (torch.addbmm, ((3, 5), (2, 3, 4), (2, 4, 5)), torch.float32),
}


@pytest.mark.parametrize("name", list(PRODUCTS))
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_beta_zero_ignores_nan_and_inf_in_the_input(name, alpha):
    # torch: with beta == 0 the input is not read, so its NaN and inf do not reach the result
    fn, shapes, dtype = PRODUCTS[name]
    torch.manual_seed(3)
    s = torch.full(shapes[0], float("nan"), dtype=dtype)
    s.view(-1)[0] = float("inf")
    a, b = torch.randn(shapes[1]).to(dtype), torch.randn(shapes[2]).to(dtype)
    model = AddProduct(fn, 0.0, alpha)
    want = model(s, a, b)
    assert torch.isfinite(want).all()
    prog = oxport.export(model, (s, a, b))
    tol = 1e-2 if dtype == torch.float16 else 1e-5
    torch.testing.assert_close(torch.as_tensor(prog(s, a, b)[0]), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_unit_factors_emit_no_mul(name):
    fn, shapes, dtype = PRODUCTS[name]
    args = tuple(torch.randn(sh).to(dtype) for sh in shapes)
    for beta, muls in ((1.0, 0), (2.0, 0 if name == "addmm" else 1), (0.0, 0)):   # Gemm has a beta
        prog = oxport.export(AddProduct(fn, beta, 1.0), args, optimize=False)
        ops = [n.op_type for n in prog.model_proto.graph.node]
        assert ops.count("Mul") == muls, (name, beta, ops)
        if beta == 0.0:   # nothing reads the input
            first = prog.model_proto.graph.input[0].name
            assert all(first not in n.input for n in prog.model_proto.graph.node), ops
