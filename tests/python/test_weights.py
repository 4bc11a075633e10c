"""apply_weights, compute_values and enable_fake_mode, as torch.onnx documents them."""
import os

import onnx
import pytest
import torch
import torchvision

import demo_models
import oxport


def _doubled(model):
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2)
    return model


def test_apply_weights_replaces_by_name():
    model, args = demo_models.mlp()
    program = oxport.export(model, args, optimize=False, verbose=False)
    other = _doubled(demo_models.mlp()[0])
    program.apply_weights(dict(other.state_dict()))
    torch.testing.assert_close(program(*args)[0], other(*args))
    program.optimize()                      # views of the new weights fold as usual
    torch.testing.assert_close(program(*args)[0], other(*args))


def test_apply_weights_unknown_name_warns():
    model, args = demo_models.mlp()
    program = oxport.export(model, args, verbose=False)
    with pytest.warns(oxport.OnnxExporterWarning, match="no weight named 'nope'"):
        program.apply_weights({"nope": torch.zeros(1)})


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(8, 8, dtype=torch.float64), r"'fc0.weight' is torch.float64 \[8, 8\]"),
    (torch.zeros(4, 8), r"'fc0.weight' is torch.float32 \[4, 8\], the model's weight is torch.float32 \[8, 8\]"),
])
def test_apply_weights_mismatch_raises_and_changes_nothing(bad, match):
    model, args = demo_models.mlp()
    program = oxport.export(model, args, optimize=False, verbose=False)
    other = _doubled(demo_models.mlp()[0]).state_dict()
    with pytest.raises(ValueError, match=match):
        program.apply_weights({"fc1.weight": other["fc1.weight"], "fc0.weight": bad})
    torch.testing.assert_close(program(*args)[0], model(*args))   # fc1 was not applied either


def test_apply_weights_after_folding_is_refused():
    model, args = demo_models.cnn()
    program = oxport.export(model, args, verbose=False)     # BatchNorm folded into Conv
    with pytest.raises(ValueError, match="folded into other constants"):
        program.apply_weights({"conv1.weight": torch.zeros(16, 3, 3, 3)})


def test_compute_values_intermediate():
    model, args = demo_models.mlp()
    program = oxport.export(model, args, verbose=False)
    (hidden, out) = program.compute_values(["sigmoid", program.model_proto.graph.output[0].name], args)
    torch.testing.assert_close(hidden, torch.sigmoid(model.fc0(args[0])))
    torch.testing.assert_close(out, model(*args))


def test_compute_values_unknown_name_lists_close_matches():
    model, args = demo_models.mlp()
    program = oxport.export(model, args, verbose=False)
    with pytest.raises(ValueError, match="'sigmod' \\(close: sigmoid"):
        program.compute_values(["sigmod"], args)


def test_fake_mode_export_then_real_weights(tmp_path):
    with oxport.enable_fake_mode():
        model = demo_models.MLPModel()
        x = torch.rand(97, 8)
    program = oxport.export(model, (x,), optimize=False, verbose=False)
    # without weights the architecture saves; with include_initializers it cannot
    program.save(tmp_path / "arch.onnx", include_initializers=False, keep_initializers_as_inputs=True)
    onnx.checker.check_model(str(tmp_path / "arch.onnx"), full_check=True)
    with pytest.raises(ValueError, match="apply_weights"):
        program.save(tmp_path / "full.onnx")
    assert not (tmp_path / "full.onnx").exists()
    real, (xr,) = demo_models.mlp()
    program.apply_weights(dict(real.state_dict()))
    program.optimize()
    program.save(tmp_path / "full.onnx")
    torch.testing.assert_close(program(xr)[0], real(xr))


def test_fake_mode_torchvision():
    with oxport.enable_fake_mode():
        model = torchvision.models.resnet18(weights=None).eval()
        x = torch.randn(1, 3, 64, 64)
    program = oxport.export(model, (x,), optimize=False, verbose=False)
    real = torchvision.models.resnet18(weights=None).eval()
    program.apply_weights(dict(real.state_dict()))
    program.optimize()
    xr = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(program(xr)[0], real(xr), rtol=1e-3, atol=1e-4)


def test_save_fake_weights_with_initializers_points_at_the_fix(tmp_path):
    with oxport.enable_fake_mode():
        model = demo_models.MLPModel()
        x = torch.rand(4, 8)
    program = oxport.export(model, (x,), optimize=False, verbose=False)
    for include_keep in ({}, {"keep_initializers_as_inputs": True}, {"external_data": True}):
        with pytest.raises(ValueError) as e:
            program.save(tmp_path / "m.onnx", **include_keep)
        assert "apply_weights" in str(e.value) and "include_initializers=False" in str(e.value)
        assert "fc0.weight" in str(e.value) or "fake" in str(e.value)
    assert os.listdir(tmp_path) == []
    program.save(tmp_path / "arch.onnx", include_initializers=False)
    assert os.listdir(tmp_path) == ["arch.onnx"]


def test_saved_without_initializers_lacks_only_the_weights(tmp_path):
    """include_initializers=False leaves out the weights, not the constants the exporter made
    (shapes, axes, scalars): a file apply_weights-style tools can complete from the state_dict."""
    with oxport.enable_fake_mode():
        model = torchvision.models.resnet18(weights=None).eval()
        x = torch.randn(1, 3, 64, 64)
    program = oxport.export(model, (x,), verbose=False)
    program.save(tmp_path / "arch.onnx", include_initializers=False)
    proto = onnx.load(str(tmp_path / "arch.onnx"))
    g = proto.graph
    defined = {i.name for i in g.input} | {i.name for i in g.initializer} | {o for n in g.node for o in n.output}
    missing = {i for n in g.node for i in n.input if i and i not in defined}
    weights = set(torchvision.models.resnet18(weights=None).state_dict())
    assert missing and missing <= weights, sorted(missing - weights)[:5]
    assert g.initializer and not ({i.name for i in g.initializer} & weights)
