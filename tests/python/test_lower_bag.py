"""embedding_bag in every mode, with offsets, 2-D bags, per-sample weights, padding_idx and
include_last_offset, against eager."""
import pytest
import torch
import torch.nn.functional as F

import oxport


class Bag(torch.nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, w, i, *rest):
        offsets = rest[0] if rest else None
        psw = rest[1] if len(rest) > 1 else None
        return F.embedding_bag(i, w, offsets, per_sample_weights=psw, **self.kw)


torch.manual_seed(0)
W = torch.randn(10, 3)
INDICES = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9])
OFFSETS = torch.tensor([0, 4, 4, 6])   # the second bag is empty


@pytest.mark.parametrize("kw", [dict(mode="sum"), dict(mode="mean"), dict(mode="max"),
                                dict(mode="mean", padding_idx=4), dict(mode="max", padding_idx=2),
                                dict(mode="sum", padding_idx=-1), dict(mode="sum", include_last_offset=True),
                                dict(mode="mean", include_last_offset=True), dict(mode="max", include_last_offset=True),
                                dict(mode="mean", padding_idx=-3)], ids=str)
def test_offsets(kw):
    model = Bag(**kw)
    program = oxport.export(model, (W, INDICES, OFFSETS), verbose=False)
    torch.testing.assert_close(program(W, INDICES, OFFSETS)[0], model(W, INDICES, OFFSETS))
    i2, o2 = torch.tensor([0, 0, 7, 1, 9, 9, 4, 2]), torch.tensor([0, 1, 1, 3])   # other values, same sizes
    torch.testing.assert_close(program(W, i2, o2)[0], model(W, i2, o2))


def test_per_sample_weights():
    model = Bag(mode="sum")
    psw = torch.rand(8)
    program = oxport.export(model, (W, INDICES, OFFSETS, psw), verbose=False)
    torch.testing.assert_close(program(W, INDICES, OFFSETS, psw)[0], model(W, INDICES, OFFSETS, psw))


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_two_dimensional_bags(mode):
    model = Bag(mode=mode)
    i = torch.tensor([[1, 2, 4], [5, 4, 3]])
    program = oxport.export(model, (W, i), verbose=False)
    torch.testing.assert_close(program(W, i)[0], model(W, i))


def test_half_weights():
    model = Bag(mode="mean")
    w = W.half()
    program = oxport.export(model, (w, INDICES, OFFSETS), verbose=False)
    torch.testing.assert_close(program(w, INDICES, OFFSETS)[0], model(w, INDICES, OFFSETS))
