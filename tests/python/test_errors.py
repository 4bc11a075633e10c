"""Bad arguments fail before capture, naming the argument; unsupported ops are listed at once."""
import pytest
import torch

import demo_models
import oxport
import oxport._export


@pytest.fixture
def no_capture(monkeypatch):
    """Fails the test if capture starts: argument errors must come first."""
    def capture(*a, **k):
        raise AssertionError("capture started before the arguments were checked")
    monkeypatch.setattr(oxport._export, "capture", capture)


def test_model_not_a_module(no_capture):
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        oxport.export(lambda x: x, (torch.zeros(1),))


@pytest.mark.parametrize("args", ["x", 3, {"x": 1}, None])
def test_args_not_tuple_or_tensor(no_capture, args):
    model, _ = demo_models.mlp()
    with pytest.raises(TypeError, match="args must be a tuple"):
        oxport.export(model, args)


@pytest.mark.parametrize("opset", [7, 17, 25])
def test_opset_out_of_range(no_capture, opset):
    model, args = demo_models.mlp()
    with pytest.raises(ValueError, match=f"opset_version={opset}"):
        oxport.export(model, args, opset_version=opset)


def test_opset_not_int(no_capture):
    model, args = demo_models.mlp()
    with pytest.raises(TypeError, match="opset_version"):
        oxport.export(model, args, opset_version="20")


def test_dynamo_false(no_capture):
    model, args = demo_models.mlp()
    with pytest.raises(ValueError, match="dynamo=False"):
        oxport.export(model, args, dynamo=False)


@pytest.mark.parametrize("kw", ["input_names", "output_names"])
def test_names_not_strings(no_capture, kw):
    model, args = demo_models.mlp()
    with pytest.raises(TypeError, match=kw):
        oxport.export(model, args, **{kw: "x"})
    with pytest.raises(ValueError, match=kw):
        oxport.export(model, args, **{kw: ["a", "a"]})


def test_list_args_accepted_as_tuple():
    model, (x,) = demo_models.mlp()
    program = oxport.export(model, [x], verbose=False)
    torch.testing.assert_close(program(x)[0], model(x))


def test_single_tensor_args_accepted():
    model, (x,) = demo_models.mlp()
    program = oxport.export(model, x, verbose=False)
    torch.testing.assert_close(program(x)[0], model(x))


def test_too_many_input_names(monkeypatch):
    """Refused before capture: torch.export is never called."""
    import oxport._export as ex

    monkeypatch.setattr(ex, "capture", lambda *a, **k: pytest.fail("captured"))
    model, args = demo_models.mlp()
    with pytest.raises(ValueError, match="input_names has 2 names but the inputs hold 1 tensor"):
        oxport.export(model, args, input_names=["a", "b"], verbose=False)


@torch.library.custom_op("oxport_test::mystery", mutates_args=())
def mystery(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


@mystery.register_fake
def _(x):
    return torch.empty_like(x)


@torch.library.custom_op("oxport_test::riddle", mutates_args=())
def riddle(x: torch.Tensor, k: int) -> torch.Tensor:
    return x * k


@riddle.register_fake
def _(x, k):
    return torch.empty_like(x)


class Unsupported(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        x = mystery(self.fc(x))
        x = riddle(x, 3)
        return mystery(x)


def test_unsupported_ops_listed_at_once():
    with pytest.raises(oxport.UnsupportedOpError) as info:
        oxport.export(Unsupported(), (torch.randn(2, 4),), verbose=False)
    err = info.value
    assert isinstance(err, oxport.OnnxExporterError)
    targets = {u["target"]: u for u in err.unsupported}
    assert set(targets) == {"oxport_test::mystery.default", "oxport_test::riddle.default"}
    assert targets["oxport_test::mystery.default"]["count"] == 2
    assert targets["oxport_test::riddle.default"]["arg_dtypes"] == "float32, int"
    msg = str(err)
    assert "2 ops in the model cannot be lowered" in msg
    assert "test_errors.py:" in msg          # the source line of the first use
    assert "(2 uses)" in msg


def test_error_classes():
    """One base class (a RuntimeError, as torch.onnx's), one subclass per stage, none a subclass of
    another: `except oxport.CaptureError` never catches a lowering failure."""
    stages = [oxport.CaptureError, oxport.UnsupportedOpError, oxport.LoweringError, oxport.OnnxRuntimeError]
    assert issubclass(oxport.OnnxExporterError, RuntimeError)
    for cls in stages:
        assert issubclass(cls, oxport.OnnxExporterError)
        assert not any(issubclass(cls, other) for other in stages if other is not cls)
    assert issubclass(oxport.OnnxExporterWarning, UserWarning)


def test_lowering_failure_in_c_is_lowering_error():
    """A failure the C core reports on a known op (here: a translation whose nodes refer to a value
    that does not exist) is a LoweringError naming the op, the node and its source line."""
    def dangling(x):
        return oxport.op.Relu(oxport.Value(index=5))
    with pytest.raises(oxport.LoweringError, match=r"oxport_test::mystery.default \(node mystery, at "
                       r".*test_errors.py:\d+\): custom translation: a node input or result refers to nothing"):
        oxport.export(Unsupported(), (torch.randn(2, 4),), verbose=False,
                      custom_translation_table={torch.ops.oxport_test.mystery.default: dangling,
                                                torch.ops.oxport_test.riddle.default: lambda x, k: x})


def test_unsupported_input_dtype_fails_before_capture(no_capture):
    model, _ = demo_models.mlp()
    with pytest.raises(TypeError, match=r"input 0 .* dtype torch.float8_e4m3fn"):
        oxport.export(model, (torch.zeros(2, 8, dtype=torch.float8_e4m3fn),))


def test_runtime_failure_is_onnx_runtime_error():
    import onnxruntime as ort

    model, args = demo_models.mlp()
    program = oxport.export(model, args, verbose=False)

    def refuses(model_bytes):
        return ort.InferenceSession(b"not a model", providers=["CPUExecutionProvider"])
    with pytest.raises(oxport.OnnxRuntimeError, match="could not load"):
        program.initialize_inference_session(refuses)
    program.release()
    with pytest.raises(oxport.OnnxRuntimeError, match="failed running"):
        program(torch.zeros(3, 5))     # wrong inner size: ONNX Runtime refuses the input


def test_verbosity_controls_logging(caplog):
    model, args = demo_models.mlp()
    options = oxport.ExportOptions(diagnostic_options=oxport.DiagnosticOptions(verbosity_level=20))
    with caplog.at_level(20, logger="oxport"), pytest.warns(DeprecationWarning):
        oxport.dynamo_export(model, *args, export_options=options)
    assert any("capture took" in r.message for r in caplog.records)
    caplog.clear()
    options = oxport.ExportOptions(diagnostic_options=oxport.DiagnosticOptions(verbosity_level=40))
    with pytest.warns(DeprecationWarning):
        oxport.dynamo_export(model, *args, export_options=options)
    assert not [r for r in caplog.records if r.name == "oxport"]
