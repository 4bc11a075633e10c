"""In-place ops without run_decompositions: `y = op_(x)` becomes `y = op(x)` where nobody else
can see the write; everything else still goes through the re-trace. Each case compares the
native export with eager and with the export of the decomposed program."""
import pytest
import torch
from torch import nn

import oxport
from oxport._capture import functionalize_inplace, needs_decomposition


class Block(nn.Module):          # what torchvision's ResNet does: relu_(...), out += identity
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.act = nn.Hardswish(inplace=True)
        self.drop = nn.Dropout(0.2, inplace=True)

    def forward(self, x):
        out = self.relu(self.conv(x))
        out += x
        out = self.act(out)
        return self.drop(out).mul_(2.0)


class InplaceOnView(nn.Module):   # the write reaches `base` through the view: must not be dropped
    def forward(self, x):
        base = x * 1
        v = base[:, :2]
        v.relu_()
        return base + 0


class InplaceOnInput(nn.Module):  # writes the user's input
    def forward(self, x):
        x.add_(1.0)
        return x * 2


class ReturnsMutated(nn.Module):  # the written value is returned: the output names the write's result
    def forward(self, x):
        y = x * 3
        y.sub_(1.0)
        return y, y.sum()


class EarlierView(nn.Module):     # a view taken before the write, read after it
    def forward(self, x):
        y = x + 1
        t = y.t()
        y.mul_(10.0)
        return t + 0


class MixedDtype(nn.Module):      # add_ keeps float16; add would promote to float32
    def forward(self, x):
        y = x.half() * 1
        y.add_(torch.ones(3, 5, dtype=torch.float32))
        return y.float()


def _ops(ep):
    return {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}


def _check(model, args):
    eager = model(*[a.clone() for a in args])
    ep = torch.export.export(model, tuple(a.clone() for a in args))
    native = oxport.export(ep, args, verbose=False)
    decomposed = oxport.export(ep.run_decompositions(), args, verbose=False)
    eager = eager if isinstance(eager, tuple) else (eager,)
    for got, via_decomp, want in zip(native(*args), decomposed(*args), eager):
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(got, via_decomp)
    return ep


def test_torchvision_style_block_skips_the_retrace(capsys):
    model = Block().eval()
    args = (torch.randn(2, 4, 6, 6),)
    ep = _check(model, args)
    assert needs_decomposition(ep, 18)               # relu_, add_, hardswish_, dropout_, mul_
    functional = functionalize_inplace(ep)
    assert needs_decomposition(functional, 18) == []
    assert not any(o.endswith("_.default") or "_.Tensor" in o or "_.Scalar" in o for o in _ops(functional))
    assert _ops(ep) != _ops(functional)             # the given program is left as it was
    oxport.export(model, args)
    assert "[oxport] decompose" not in capsys.readouterr().err


@pytest.mark.parametrize("cls", [InplaceOnView, EarlierView, MixedDtype])
def test_visible_writes_are_kept(cls):
    args = (torch.randn(3, 5),)
    ep = _check(cls(), args)
    kept = {n.target for n in functionalize_inplace(ep).graph.nodes if n.op == "call_function"}
    assert any(getattr(t, "_schema", None) is not None and t._schema.is_mutable for t in kept)


def test_returned_write_is_functional():
    args = (torch.randn(3, 5),)
    ep = _check(ReturnsMutated(), args)
    assert not any("sub_" in o for o in _ops(functionalize_inplace(ep)))


def test_write_to_input_matches_eager():
    model = InplaceOnInput()
    x = torch.randn(3, 5)
    program = oxport.export(model, (x.clone(),), verbose=False)
    torch.testing.assert_close(program(x.clone())[0], model(x.clone()))


def test_grad_mode_region_in_forward(capsys):
    """`with torch.no_grad():` inside forward makes torch.export wrap the region in a higher-order
    op; the export goes through run_decompositions, which inlines it."""
    class M(torch.nn.Module):
        def forward(self, x):
            with torch.no_grad():
                y = x * 2
            return y + 1

    x = torch.randn(3)
    program = oxport.export(M(), (x,))
    assert "[oxport] decompose" in capsys.readouterr().err
    torch.testing.assert_close(program(x)[0], M()(x))
