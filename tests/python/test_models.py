"""The benchmark models, small: each exports with every op of its torch.export graph lowered
natively (no run_decompositions), passes the ONNX checker and matches eager in ONNX Runtime.
Weights are random (torchvision weights=None, transformers from configs); sizes are cut down
(2 layers, hidden 64) but the architectures are the real ones."""
import collections
import os
import sys

import onnx
import pytest
import torch

import oxport
from oxport import _capture

torchvision = pytest.importorskip("torchvision")
transformers = pytest.importorskip("transformers")

# tools/models.py, the corpus of `make models`
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import models as corpus  # noqa: E402


def _vision(name):
    def build():
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(weights=None).eval()
        if name == "vit_b_16":
            # torchvision zero-initializes the ViT head: an all-zero output would match anything.
            torch.nn.init.normal_(model.heads.head.weight, std=0.02)
        # Fresh batch-norm statistics (mean 0, var 1) let mobilenet's activations vanish (outputs
        # ~1e-9); statistics like trained ones keep every output meaningful.
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                torch.nn.init.uniform_(m.weight, 0.5, 1.5)
                torch.nn.init.normal_(m.bias, 0, 0.1)
        return model, (torch.randn(1, 3, 224, 224),), {}
    return build


def _hf(kind, attn):
    def build():
        torch.manual_seed(0)
        common = dict(vocab_size=1000, attn_implementation=attn)
        if kind == "gpt2":
            config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=128,
                                             bos_token_id=0, eos_token_id=0, **common)
            model, kwargs = transformers.GPT2LMHeadModel(config), {"use_cache": False}
        elif kind == "bert":
            config = transformers.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                             intermediate_size=128, **common)
            model, kwargs = transformers.BertModel(config), {}
        else:
            config = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                              num_key_value_heads=2, intermediate_size=128, **common)
            model, kwargs = transformers.LlamaForCausalLM(config), {"use_cache": False}
        kwargs["return_dict"] = False
        return model.eval(), (torch.randint(0, 1000, (2, 16)),), kwargs
    return build


MODELS = {
    "resnet50": _vision("resnet50"),
    "mobilenet_v3_large": _vision("mobilenet_v3_large"),
    "vit_b_16": _vision("vit_b_16"),
    **{f"{kind}-{attn}": _hf(kind, attn) for kind in ("gpt2", "bert", "llama") for attn in ("sdpa", "eager")},
}


def _inplace(target):
    # "aten::add_.Tensor": the training IR keeps torchvision's in-place ops (ReLU(inplace=True),
    # `out += identity`). needs_decomposition reports every mutating op, lowered or not: mutation
    # needs functionalization, which only run_decompositions does.
    return target.split("::")[1].split(".")[0].endswith("_")


@pytest.mark.parametrize("name", list(MODELS))
def test_model_exports_natively_and_matches(name):
    model, args, kwargs = MODELS[name]()
    ep = torch.export.export(model, args, kwargs=kwargs, strict=False)
    missing = _capture.needs_decomposition(ep, 20)
    assert [t for t in missing if not _inplace(t)] == []
    program = oxport.export(model, args, kwargs=kwargs, verbose=False)
    onnx.checker.check_model(program.model_proto, full_check=True)
    with torch.no_grad():
        expected = model(*args, **kwargs)
    expected = [e for e in (expected if isinstance(expected, (tuple, list)) else (expected,))
                if isinstance(e, torch.Tensor)]
    actual = program(*args)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        print(f"{name}: max abs diff {(a - e).abs().max().item():.3g}")
        assert e.abs().max() > 1e-3, "a near-zero output would match anything"
        torch.testing.assert_close(a, e, rtol=1e-3, atol=1e-4)


class _IdsOnly(torch.nn.Module):
    """input_ids as the one argument, so dynamic_shapes names only it."""

    def __init__(self, model, kwargs):
        super().__init__()
        self.model, self.kwargs = model, kwargs

    def forward(self, input_ids):
        return self.model(input_ids, **self.kwargs)[0]


@pytest.mark.parametrize("name", ["gpt2-sdpa", "bert-sdpa", "llama-sdpa"])
def test_transformer_with_dynamic_batch_and_sequence(name):
    model, args, kwargs = MODELS[name]()
    wrapped = _IdsOnly(model, kwargs).eval()
    program = oxport.export(wrapped, args, dynamic_shapes={"input_ids": {0: "batch", 1: "seq"}}, verbose=False)
    onnx.checker.check_model(program.model_proto, full_check=True)
    for shape in [(1, 5), (3, 9), (2, 33)]:
        ids = torch.randint(0, 1000, shape)
        with torch.no_grad():
            expected = wrapped(ids)
        torch.testing.assert_close(program(ids)[0], expected, rtol=1e-3, atol=1e-4)


def test_llama_with_dynamic_cache_at_other_sizes():
    """One decoding step of Llama over a DynamicCache, with batch, new tokens and past length
    dynamic: the cache's inputs and outputs keep their named dims, and the model matches eager
    at sizes other than the traced one (a single new token, a longer past, batch 1 and 3)."""
    model, args, dyn = corpus.llama_cache()
    program = oxport.export(model, args, dynamic_shapes=dyn["spec"], verbose=False)
    onnx.checker.check_model(program.model_proto, full_check=True)
    graph = program.model_proto.graph
    assert [d.dim_param for d in graph.input[1].type.tensor_type.shape.dim[:3]] == ["batch", "", "past"]
    assert graph.output[1].type.tensor_type.shape.dim[0].dim_param == "batch"
    for inputs in [args] + dyn["inputs"]:
        with torch.no_grad():
            expected = model(*inputs)
        actual = program(*inputs)
        assert actual[1].shape[2] == inputs[1].shape[2] + inputs[0].shape[1]   # past + new tokens
        for a, e in zip(actual, expected, strict=True):
            torch.testing.assert_close(a, e, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["t5", "whisper_decoder", "resnet_hf"])
def test_corpus_model_matches_eager(name):
    _family, build = corpus.corpus()[name]
    model, args, _ = build()
    program = oxport.export(model, args, verbose=False)
    with torch.no_grad():
        expected = model(*args)
    for a, e in zip(program(*args), expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-3, atol=1e-4)


def test_detection_rows_tied_by_round_off_may_swap_but_nothing_else():
    # Detections are sorted by score; two scores 1e-7 apart may come out in either order.
    boxes = torch.tensor([[0., 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]])
    scores, labels = torch.tensor([0.5, 0.4, 0.4000001]), torch.tensor([1, 2, 3])
    swapped = [boxes[[0, 2, 1]], scores[[0, 2, 1]], labels[[0, 2, 1]]]
    aligned = corpus._align_tied_rows(swapped, [boxes, scores, labels], rtol=1e-3, atol=1e-4)
    assert all(torch.equal(torch.as_tensor(a), e) for a, e in zip(aligned, [boxes, scores, labels]))
    moved = [swapped[0] + torch.tensor([[0.], [0], [9]]), swapped[1], swapped[2]]
    assert corpus._align_tied_rows(moved, [boxes, scores, labels], rtol=1e-3, atol=1e-4) is moved
    far = [boxes[[0, 2, 1]], torch.tensor([0.5, 0.3, 0.4]), labels[[0, 2, 1]]]
    assert corpus._align_tied_rows(far, [boxes, scores, labels], rtol=1e-3, atol=1e-4) is far


@pytest.mark.parametrize("name,limit", [("resnet50", 122), ("resnet18", 49), ("mobilenet_v2", 100)])
def test_torchvision_node_budget(name, limit):
    """Issue 6's budgets, on the corpus's own build of each model: batch norms folded into the
    convolutions, the classifier one Gemm, no Identity or Constant left; and the optimized graph
    computes what the unoptimized one does."""
    model, args, _ = corpus.corpus()[name][1]()
    program = oxport.export(model, args, optimize=False, verbose=False)
    before = program(*args)
    program.optimize()
    after = program(*args)
    ops = [n.op_type for n in program.model_proto.graph.node]
    assert len(ops) <= limit, collections.Counter(ops)
    assert "Identity" not in ops and "Constant" not in ops and "BatchNormalization" not in ops
    for a, b in zip(after, before, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * b.abs().max().item())
