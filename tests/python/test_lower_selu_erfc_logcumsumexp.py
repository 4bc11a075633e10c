import pytest
import torch

import oxport


def _check(mod, *args):
    prog = oxport.export(mod, args)
    torch.testing.assert_close(prog(*args)[0], mod(*args), rtol=1e-4, atol=1e-5)


class Selu(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.selu(x)


class Erfc(torch.nn.Module):
    def forward(self, x):
        return torch.erfc(x)


class LogCumSumExp(torch.nn.Module):
    def forward(self, x):
        return torch.logcumsumexp(x, dim=1)


@pytest.mark.parametrize("mod", [Selu(), Erfc(), LogCumSumExp()])
def test_float(mod):
    _check(mod, torch.randn(3, 5) * 3)


def test_logcumsumexp_infinities():
    x = torch.tensor([[-float("inf"), 0.0, 1.0], [float("inf"), -2.0, 5.0]])
    _check(LogCumSumExp(), x)
