"""ONNXProgram.rename_axes (issue 5, torch.onnx's ONNXProgram.rename_axes): dim_param names renamed
on inputs, outputs and every value_info, expressions included; the model still runs."""
import onnx
import pytest
import torch

import oxport


class Net(torch.nn.Module):
    def forward(self, x, y):
        h = torch.relu(x) + 1
        return torch.cat([h, y], dim=1).sum(-1), h * 2


def _dims(model):
    g = model.graph
    out = {}
    for v in list(g.input) + list(g.output) + list(g.value_info):
        out[v.name] = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    return out


def _params(model):
    return {d for dims in _dims(model).values() for d in dims if isinstance(d, str)}


@pytest.fixture
def program():
    x, y = torch.rand(2, 3, 4), torch.rand(2, 5, 4)
    b, s, t = torch.export.Dim("b", max=64), torch.export.Dim("s", max=64), torch.export.Dim("t", max=64)
    return oxport.export(Net(), (x, y), dynamic_shapes=({0: b, 1: s}, {0: b, 1: t}), verbose=False)


def test_rename_axes_everywhere(program, tmp_path):
    before = _params(program.model_proto)
    assert {"b", "s", "t"} <= before
    assert any("+" in p for p in before)          # the cat's length, an expression of s and t
    assert len(program.model_proto.graph.value_info) > 0
    program.rename_axes({"b": "batch", "s": "seq", "t": "past"})
    after = _params(program.model_proto)
    assert {"batch", "seq", "past"} <= after and not ({"b", "s", "t"} & after)
    exprs = [p for p in after if "+" in p]
    assert exprs and all("seq" in p and "past" in p for p in exprs), exprs
    g = program.model_proto.graph
    assert [d.dim_param for d in g.input[0].type.tensor_type.shape.dim[:2]] == ["batch", "seq"]
    assert g.output[1].type.tensor_type.shape.dim[0].dim_param == "batch"
    path = tmp_path / "renamed.onnx"
    program.save(path)
    onnx.checker.check_model(str(path), full_check=True)
    x, y = torch.rand(3, 6, 4), torch.rand(3, 2, 4)
    for got, want in zip(program(x, y), Net()(x, y)):
        torch.testing.assert_close(got, want)


def test_rename_axes_swap_and_symbolic_dim_keys(program):
    class SymbolicDim:   # what onnx_ir hands out: torch.onnx takes its .value
        def __init__(self, value):
            self.value = value

    program.rename_axes({SymbolicDim("s"): "t", "t": "s"})
    g = program.model_proto.graph
    assert g.input[0].type.tensor_type.shape.dim[1].dim_param == "t"
    assert g.input[1].type.tensor_type.shape.dim[1].dim_param == "s"


def test_rename_axes_unknown_name_changes_nothing_and_bad_values_raise(program):
    before = _dims(program.model_proto)
    program.rename_axes({"nope": "x"})
    assert _dims(program.model_proto) == before
    with pytest.raises(ValueError, match="non-empty string"):
        program.rename_axes({"b": ""})
    with pytest.raises(ValueError, match="not an axis name"):
        program.rename_axes({3: "x"})
    assert _dims(program.model_proto) == before
