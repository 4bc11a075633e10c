"""dynamic_shapes in the forms torch.onnx accepts; named axes become dim_param; the exported model
runs at sizes other than the example."""
import pytest
import torch
from torch.export import Dim

import demo_models
import oxport
import oxport._export


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("spec", [
    {"input_ids": {0: "batch", 1: "seq"}},
    {"input_ids": {0: Dim("batch", max=8), 1: Dim("seq", max=64)}},
    ({0: "batch", 1: "seq"},),
    {"input_ids": ("batch", "seq")},
])
def test_named_axes_and_other_sizes(spec):
    model, args = demo_models.transformer()
    program = oxport.export(model, args, dynamic_shapes=spec, verbose=False)
    graph = program.model_proto.graph
    assert _dims(graph.input[0]) == ["batch", "seq"]
    assert _dims(graph.output[0]) == ["batch", "seq", 100]
    for b, t in [(1, 5), (3, 16), (2, 33)]:
        ids = torch.randint(0, 100, (b, t))
        torch.testing.assert_close(program(ids)[0], model(ids))


@pytest.mark.parametrize("hint", [Dim.DYNAMIC, Dim.AUTO])
def test_unnamed_dynamic_axes(hint):
    model, args = demo_models.cnn()
    program = oxport.export(model, args, dynamic_shapes=({0: hint},), verbose=False)
    dim0 = program.model_proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param                      # symbolic, named by torch
    for b in (1, 3):
        x = torch.randn(b, 3, 32, 32)
        torch.testing.assert_close(program(x)[0], model(x))


def test_static_and_int_specs_stay_static():
    model, args = demo_models.mlp()
    program = oxport.export(model, args, dynamic_shapes=({0: Dim.STATIC, 1: 8},), verbose=False)
    assert _dims(program.model_proto.graph.input[0]) == [97, 8]


def test_dynamic_axes_converted_with_warning():
    model, args = demo_models.cnn()
    with pytest.warns(DeprecationWarning, match="dynamic_axes"):
        program = oxport.export(model, args, input_names=["images"],
                                dynamic_axes={"images": {0: "N"}}, verbose=False)
    assert _dims(program.model_proto.graph.input[0])[0] == "N"
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(program(x)[0], model(x))


@pytest.fixture
def no_capture(monkeypatch):
    def capture(*a, **k):
        raise AssertionError("capture started before dynamic_shapes was checked")
    monkeypatch.setattr(oxport._export, "capture", capture)


@pytest.mark.parametrize("spec, exc, match", [
    ({"nope": {0: "b"}}, ValueError, "not inputs of the model"),
    (({0: "b"}, {0: "c"}), ValueError, "2 entries"),
    ({"tensor_x": {0: "not an identifier"}}, ValueError, "identifier"),
    ({"tensor_x": {0: 1.5}}, TypeError, r"dynamic_shapes\['tensor_x'\]\[0\]"),
    ("batch", TypeError, "dict or a tuple"),
])
def test_malformed_dynamic_shapes_fail_before_capture(no_capture, spec, exc, match):
    model, args = demo_models.mlp()
    with pytest.raises(exc, match=match):
        oxport.export(model, args, dynamic_shapes=spec)


def test_varargs_forward_takes_one_entry_for_all_its_args():
    """forward(*args) is one parameter: torch.export (and torch.onnx) take one dynamic_shapes entry
    holding a spec per argument, not one entry per argument."""
    class Add(torch.nn.Module):
        def forward(self, *xs):
            return xs[0] + xs[1]

    args = (torch.randn(2, 3), torch.randn(2, 3))
    program = oxport.export(Add(), args, dynamic_shapes=(({0: "batch"}, {0: "batch"}),), verbose=False)
    assert _dims(program.model_proto.graph.input[1]) == ["batch", 3]
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    torch.testing.assert_close(program(a, b)[0], a + b)


class CatSplit(torch.nn.Module):
    """Two batches through one layer and back, as torchvision's RoIHeads splits its boxes per
    image."""

    def forward(self, a, b):
        y = torch.cat([a, b]).relu() * 2
        first, second = y.split([a.shape[0], b.shape[0]])
        return first.sum(0), second


def test_split_with_symbolic_sizes():
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    spec = ({0: Dim("na", max=64)}, {0: Dim("nb", max=64)})
    model = CatSplit()
    program = oxport.export(model, (a, b), dynamic_shapes=spec, verbose=False)
    assert "Split" in [n.op_type for n in program.model_proto.graph.node]
    for na, nb in [(3, 5), (1, 7), (6, 2)]:
        x, y = torch.randn(na, 4), torch.randn(nb, 4)
        for actual, expected in zip(program(x, y), model(x, y), strict=True):
            torch.testing.assert_close(actual, expected)
