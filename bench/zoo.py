"""The benchmark's models: name → builder returning (model in eval mode, example args).

Every builder seeds torch, so each run of a model sees the same weights and inputs. Heavy imports
(torchvision, transformers) happen inside the builders: a child process pays only for its model.
Hugging Face models are built from configs written here, with random weights; nothing is fetched.
They return their ModelOutput (a pytree): with transformers 5, config.return_dict=False breaks
GPT-2 and Llama in eager mode.
"""
from __future__ import annotations

import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo"))
import demo_models

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEPTHS = (8, 32, 128, 512)
SEQ_LEN = 64          # tokens per example for the language models
LLAMA_SEQ_LEN = 32    # shorter for the 1B model, so that an ONNX Runtime run stays near a second


def _torchvision(name: str):
    def build():
        import torchvision

        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(weights=None).eval()
        return model, (torch.randn(1, 3, 224, 224),)
    return build


def _ids(vocab: int, seq_len: int = SEQ_LEN) -> tuple[torch.Tensor]:
    return (torch.randint(0, vocab, (1, seq_len), dtype=torch.int64),)


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=12, use_cache=False)   # the 124M "gpt2"
    return GPT2LMHeadModel(config).eval(), _ids(config.vocab_size)


def bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig()   # the defaults are bert-base: 12 layers, hidden 768
    return BertModel(config, add_pooling_layer=True).eval(), _ids(config.vocab_size)


def llama_1b():
    """About 1.0 B parameters: TinyLlama's widths at 17 layers, untied embeddings."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                         num_hidden_layers=17, num_attention_heads=32, num_key_value_heads=32,
                         max_position_embeddings=2048, tie_word_embeddings=False,
                         use_cache=False)
    return LlamaForCausalLM(config).eval(), _ids(config.vocab_size, LLAMA_SEQ_LEN)


class Block(nn.Module):
    """The depth sweep's unit: x + GELU(LayerNorm(Linear(x)))."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return x + torch.nn.functional.gelu(self.norm(self.fc(x)))


def _deep(depth: int, dim: int = 256):
    def build():
        torch.manual_seed(0)
        model = nn.Sequential(*(Block(dim) for _ in range(depth))).eval()
        return model, (torch.randn(16, dim),)
    return build


MODELS = {
    **demo_models.MODELS,
    "resnet50": _torchvision("resnet50"),
    "mobilenet_v3_large": _torchvision("mobilenet_v3_large"),
    "vit_b_16": _torchvision("vit_b_16"),
    "gpt2": gpt2,
    "bert": bert,
    "llama_1b": llama_1b,
    **{f"depth{d}": _deep(d) for d in DEPTHS},
}

# The models of `--quick`: small enough for a run of a minute or two.
QUICK = ("mlp", "cnn", "transformer", "mobilenet_v3_large", "depth8", "depth32")
