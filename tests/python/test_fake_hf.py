"""enable_fake_mode() with Hugging Face transformers models built from a config: construct under the
context manager, export, apply the weights of a real instance, compare with eager. torch.onnx
dropped fake mode because it broke here: the rotary `inv_freq` is a non-persistent buffer no
state_dict carries, so it must be computed for real (see oxport/_fake.py)."""
import pytest
import torch

import oxport

transformers = pytest.importorskip("transformers", reason="transformers is not installed")


def _llama():
    cfg = transformers.LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return transformers.LlamaForCausalLM(cfg).eval()


def _gpt2():
    cfg = transformers.GPT2Config(vocab_size=512, n_embd=64, n_layer=2, n_head=4, n_positions=128)
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.mark.parametrize("build", [_llama, _gpt2], ids=["llama", "gpt2"])
def test_fake_mode_transformers(build):
    with oxport.enable_fake_mode():
        model = build()
        ids = torch.randint(0, 512, (2, 12))
        assert all(isinstance(p, torch._subclasses.FakeTensor) for p in model.parameters())
    program = oxport.export(model, (ids,), kwargs={"use_cache": False}, optimize=False, verbose=False)
    assert program._graph.has_fake_weights()
    torch.manual_seed(0)
    real = build()
    program.apply_weights(dict(real.state_dict()))
    assert not program._graph.has_fake_weights()   # non-persistent buffers were computed for real
    program.optimize()
    ids = torch.randint(0, 512, (2, 12))
    with torch.no_grad():
        expected = real(ids, use_cache=False).logits
    torch.testing.assert_close(program(ids)[0], expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("build", [_llama, _gpt2], ids=["llama", "gpt2"])
def test_export_inside_fake_mode(build):
    """The export made inside the context computes the buffers no state_dict carries itself."""
    with oxport.enable_fake_mode():
        model = build()
        ids = torch.randint(0, 512, (2, 12))
        program = oxport.export(model, (ids,), kwargs={"use_cache": False}, verbose=False)
    torch.manual_seed(0)
    real = build()
    program.apply_weights(dict(real.state_dict()))
    assert not program._graph.has_fake_weights()
    ids = torch.randint(0, 512, (2, 12))
    with torch.no_grad():
        expected = real(ids, use_cache=False).logits
    torch.testing.assert_close(program(ids)[0], expected, rtol=1e-3, atol=1e-4)


def test_fake_mode_random_buffer_stays_fake():
    """A non-persistent buffer drawn at random has no value to compute: it stays fake, and running
    the model says which weight is missing."""
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)
            self.register_buffer("noise", torch.randn(4), persistent=False)
            self.register_buffer("scale", torch.arange(4, dtype=torch.float32) / 4, persistent=False)

        def forward(self, x):
            return self.lin(x) * self.scale + self.noise

    with oxport.enable_fake_mode():
        m = M()
    assert isinstance(m.noise, torch._subclasses.FakeTensor)
    assert not isinstance(m.scale, torch._subclasses.FakeTensor)
    torch.testing.assert_close(m.scale, torch.arange(4, dtype=torch.float32) / 4)
    assert isinstance(m.lin.weight, torch._subclasses.FakeTensor)
