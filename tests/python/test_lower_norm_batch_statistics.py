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
