"""Issue 15, items 2, 4, 10 and 12: no silent unsound capture, keyword arguments bound by name,
clear errors naming the argument, dynamic_shapes axes checked. Each test failed before the fix."""
import os
import sys
import threading
import time

import pytest
import torch
from torch.export import Dim

import oxport


class Branchy(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:   # a Python branch on data
            return x + 1
        return x - 1


class FixesDim(torch.nn.Module):
    def forward(self, x):
        return x.reshape(4, -1) + torch.ones(4, 3)


class Sub(torch.nn.Module):
    def forward(self, x, y):
        return x - y


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.lin(x)


# ---- item 2: draft_export only when asked ----

def test_data_dependent_branch_fails_naming_line_and_torch_cond(monkeypatch):
    monkeypatch.delenv("TORCH_ONNX_ENABLE_DRAFT_EXPORT", raising=False)
    with pytest.raises(oxport.OnnxExporterError) as info:
        oxport.export(Branchy(), (torch.ones(3),), verbose=False)
    text = str(info.value)
    assert "torch.cond" in text
    assert "test_reliability_api.py" in text and "if x.sum() > 0:" in text


def test_dynamic_dim_the_model_fixes_fails_naming_dim(monkeypatch):
    monkeypatch.delenv("TORCH_ONNX_ENABLE_DRAFT_EXPORT", raising=False)
    with pytest.raises(oxport.OnnxExporterError) as info:
        oxport.export(FixesDim(), (torch.randn(4, 3),), dynamic_shapes={"x": {0: Dim.DYNAMIC}}, verbose=False)
    text = str(info.value)
    assert "axis 0 of input 'x'" in text
    # torch.export's own explanation, whole
    assert "specialized it to be a constant (4)" in text
    assert "replace it with either Dim.STATIC or Dim.AUTO" in text


def test_draft_export_when_asked_warns_what_it_assumed():
    with pytest.warns(oxport.OnnxExporterWarning, match="NOT sound") as record:
        program = oxport.export(Branchy(), (torch.ones(3),), verbose=False, draft_export=True)
    assert program.capture_strategy == "torch.export.draft_export"
    text = "\n".join(str(w.message) for w in record)
    assert "if x.sum() > 0:" in text


def test_draft_export_env_switch_as_torch_onnx(monkeypatch):
    monkeypatch.setenv("TORCH_ONNX_ENABLE_DRAFT_EXPORT", "1")
    with pytest.warns(oxport.OnnxExporterWarning, match="draft_export"):
        program = oxport.export(Branchy(), (torch.ones(3),), verbose=False)
    assert program.capture_strategy == "torch.export.draft_export"


# ---- item 4: keyword arguments by name ----

def test_call_binds_kwargs_by_name():
    x, y = torch.randn(3), torch.randn(3)
    program = oxport.export(Sub(), (x, y), verbose=False)
    torch.testing.assert_close(program(y=y, x=x)[0], x - y)
    torch.testing.assert_close(program(x, y=y)[0], x - y)
    torch.testing.assert_close(program.compute_values([program.model_proto.graph.output[0].name],
                                                      kwargs={"y": y, "x": x})[0], x - y)


def test_call_binds_kwargs_exported_as_kwargs_by_name():
    x, y = torch.randn(3), torch.randn(3)
    program = oxport.export(Sub(), (), kwargs={"x": x, "y": y}, verbose=False)
    torch.testing.assert_close(program(y=y, x=x)[0], x - y)


# ---- item 10: clear errors ----

def test_apply_weights_meta_tensor_is_value_error():
    program = oxport.export(Linear(), (torch.randn(1, 3),), verbose=False)
    with pytest.raises(ValueError, match=r"'lin\.weight' is a meta tensor"):
        program.apply_weights({"lin.weight": torch.empty(2, 3, device="meta")})


def test_compute_values_of_int_is_type_error():
    program = oxport.export(Linear(), (torch.randn(1, 3),), verbose=False)
    with pytest.raises(TypeError, match="value_names"):
        program.compute_values(5, (torch.randn(1, 3),))


def test_verify_atol_str_is_refused_before_export(monkeypatch):
    import oxport._capture as cap

    def never(*a, **k):
        raise AssertionError("capture ran before the argument check")
    monkeypatch.setattr(cap, "STRATEGIES", tuple((n, never) for n, _ in cap.STRATEGIES))
    with pytest.raises(TypeError, match="verify_atol"):
        oxport.export(Linear(), (torch.randn(1, 3),), verify=True, verify_atol="x", verbose=False)


def test_artifacts_dir_that_is_a_file_is_refused_before_export(tmp_path):
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("")
    with pytest.raises(ValueError, match="artifacts_dir"):
        oxport.export(Linear(), (torch.randn(1, 3),), report=True, artifacts_dir=a_file, verbose=False)


def test_forward_returning_str_names_the_output():
    class ReturnsStr(torch.nn.Module):
        def forward(self, x):
            return x + 1, "hello"
    with pytest.raises(oxport.OnnxExporterError, match=r"output 1 .*str.*'hello'"):
        oxport.export(ReturnsStr(), (torch.randn(2),), verbose=False)


def test_sparse_input_is_refused_naming_it():
    class Dense(torch.nn.Module):
        def forward(self, x):
            return x.to_dense() + 1
    with pytest.raises(TypeError, match=r"args\[0\].*sparse"):
        oxport.export(Dense(), (torch.randn(2, 2).to_sparse(),), verbose=False)


@pytest.mark.parametrize("kind", ["meta", "sparse", "quantized"])
def test_call_with_unrunnable_tensor_names_the_input(kind):
    x = torch.randn(2, 3)
    program = oxport.export(Sub(), (x, x), verbose=False)
    bad = {"meta": torch.empty(2, 3, device="meta"), "sparse": x.to_sparse(),
           "quantized": torch.quantize_per_tensor(x, 0.1, 0, torch.quint8)}[kind]
    with pytest.raises((TypeError, ValueError), match=f"input 'y' is a .*{kind}"):
        program(x, bad)


@torch.library.custom_op("oxport_rel::scaled_relu", mutates_args=())
def _scaled_relu_op(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x) * 2


@_scaled_relu_op.register_fake
def _(x):
    return torch.empty_like(x)


def test_function_proto_with_invalid_utf8_is_refused():
    sys.path.insert(0, os.path.dirname(__file__))
    from onnxscript_functions import scaled_relu_fn

    class CraftedProto:
        def __init__(self, fp):
            self._fp = fp

        def __getattr__(self, k):
            return getattr(self._fp, k)

        def SerializeToString(self):   # an op_type that is not UTF-8, same length
            return self._fp.SerializeToString().replace(b"Relu", b"Rel\xff")

    class Crafted:
        """An onnxscript function whose FunctionProto carries bytes that are not UTF-8."""
        def __init__(self, fn):
            self.fn, self.function, self.function_ir = fn, fn.function, fn.function_ir

        def to_function_proto(self):
            return CraftedProto(self.fn.to_function_proto())

        def __call__(self, *a, **k):
            return self.fn(*a, **k)

    class M(torch.nn.Module):
        def forward(self, x):
            return torch.ops.oxport_rel.scaled_relu(x)
    with pytest.raises(oxport.OnnxExporterError, match=r"not valid UTF-8.*op_type"):
        program = oxport.export(M(), (torch.randn(3),), verbose=False, custom_translation_table={
            torch.ops.oxport_rel.scaled_relu.default: Crafted(scaled_relu_fn)})
        assert program.model_proto is None   # not reached; it failed here before (decoding the op types)


def test_apply_weights_while_other_threads_call():
    """Callers take the session under a lock and run outside it: apply_weights, which drops the
    session, can no longer pull it from under a call (AttributeError on None before)."""
    model, x = Linear(), torch.randn(4, 3)
    program = oxport.export(model, (x,), verbose=False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    errors, stop = [], threading.Event()

    def call():
        try:
            while not stop.is_set():
                program(x)
        except Exception as e:   # the test reports whatever a caller met
            errors.append(e)
    threads = [threading.Thread(target=call) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)   # switch threads often: the window between a check and a use is small
    for t in threads:
        t.start()
    try:
        end = time.monotonic() + 2.0   # the race showed within ~130 swaps (0.1 s) before the fix
        while time.monotonic() < end and not errors:
            program.apply_weights(state)
            time.sleep(0.0005)
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(interval)
    assert not errors, repr(errors[0])


# ---- item 12: dynamic_shapes axes in range ----

def test_out_of_range_dynamic_axis_is_refused():
    with pytest.raises(ValueError, match=r"'x'.*no axis 5"):
        oxport.export(Sub(), (torch.randn(2, 3), torch.randn(2, 3)),
                      dynamic_shapes={"x": {5: "b"}, "y": None}, verbose=False)
