"""torchvision's nms (ONNX NonMaxSuppression), roi_align (RoiAlign) and torch.unique (ONNX Unique),
against eager."""
import pytest
import torch
import torchvision

import oxport


class Nms(torch.nn.Module):
    def __init__(self, iou):
        super().__init__()
        self.iou = iou

    def forward(self, boxes, scores):
        return torchvision.ops.nms(boxes, scores, self.iou)


def _boxes(n, seed):
    """n boxes in clusters of 3: copies of one box moved by up to 4 units, which overlap it by
    IoU 0.6-1, so every threshold suppresses some."""
    g = torch.Generator().manual_seed(seed)
    xy = (torch.rand(n // 3, 2, generator=g) * 100).repeat_interleave(3, 0)
    wh = (torch.rand(n // 3, 2, generator=g) * 40 + 20).repeat_interleave(3, 0)
    xy = xy + torch.rand(n, 2, generator=g) * 4
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


@pytest.mark.parametrize("iou", [0.3, 0.5, 0.8])
def test_nms_keeps_what_torchvision_keeps(iou):
    boxes, scores = _boxes(60, 1)
    model = Nms(iou)
    program = oxport.export(model, (boxes, scores), verbose=False)
    expected = model(boxes, scores)
    assert 0 < len(expected) < 60, "the boxes must overlap for the test to mean anything"
    for seed in (1, 2):   # the export's boxes, and others of the same count
        b, s = _boxes(60, seed)
        assert program(b, s)[0].tolist() == model(b, s).tolist()


class RoiAlign(torch.nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x, rois):
        return torchvision.ops.roi_align(x, rois, **self.kw)


def _rois(k, seed):
    """k ROIs over two 16 x 20 images at scale 0.5: large ones, ones under a pixel (the unaligned
    mode makes them 1 x 1), and ones crossing the border (samples past it count as 0)."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(k, 2, generator=g) * 40 - 4
    wh = torch.rand(k, 2, generator=g) * 24
    wh[: k // 4] *= 0.05
    batch = torch.randint(0, 2, (k, 1), generator=g).float()
    return torch.cat([batch, xy, xy + wh], 1)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roi_align_matches_torchvision(aligned, sampling_ratio, dtype):
    x = torch.randn(2, 3, 16, 20, dtype=dtype)
    model = RoiAlign(output_size=(3, 4), spatial_scale=0.5, sampling_ratio=sampling_ratio, aligned=aligned)
    rois = _rois(12, 0).to(dtype)
    program = oxport.export(model, (x, rois), verbose=False)
    assert [n.op_type for n in program.model_proto.graph.node].count("RoiAlign") == 1
    for seed in (0, 1):
        r = _rois(12, seed).to(dtype)
        (actual,) = program(x, r)
        torch.testing.assert_close(actual, model(x, r))


class Unique(torch.nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x):
        return torch.unique(x, **self.kw)


@pytest.mark.parametrize("x", [torch.tensor([[3, 1, 3], [0, 1, 7]]), torch.tensor([4, -1, 4, 2], dtype=torch.int32),
                               torch.tensor([1.5, -2.0, 1.5, 0.0]).half(), torch.tensor([True, False, True])],
                         ids=["int64", "int32", "float16", "bool"])
@pytest.mark.parametrize("kw", [{}, {"return_inverse": True}, {"return_counts": True},
                                {"return_inverse": True, "return_counts": True}],
                         ids=["plain", "inverse", "counts", "both"])
def test_unique_matches_eager(x, kw):
    model = Unique(**kw)
    program = oxport.export(model, (x,), verbose=False)
    expected = model(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    actual = program(x)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e)
