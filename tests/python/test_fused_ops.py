"""Fused ONNX ops the optimizer or the lowering emits where the opset has them, checked against
eager, and their absence below that opset."""
import collections

import pytest
import torch
import torch.nn.functional as F

import oxport


class RMSNorm(torch.nn.Module):   # what Hugging Face's Llama, Mistral and Qwen do by hand
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(dim))
        self.eps = eps

    def forward(self, x):
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class Norms(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = RMSNorm(16)
        self.proj = torch.nn.Linear(16, 16)

    def forward(self, x):
        y = self.a(x)
        z = F.rms_norm(self.proj(y), (16,), eps=1e-5)      # no weight: a scale of ones
        return y + z, self.a(z)


def _ops(program):
    return collections.Counter(n.op_type for n in program.model_proto.graph.node)


@pytest.mark.parametrize("opset", [18, 23])
def test_rms_norm(opset):
    torch.manual_seed(0)
    model, x = Norms().eval(), torch.randn(2, 5, 16)
    program = oxport.export(model, (x,), opset_version=opset, verbose=False)
    ops = _ops(program)
    if opset >= 23:
        assert ops["RMSNormalization"] == 3
        assert not {"ReduceMean", "Sqrt", "Reciprocal", "Pow"} & set(ops)
    else:
        assert "RMSNormalization" not in ops
    with torch.no_grad():
        want = model(x)
    for got, w in zip(program(x), want):
        torch.testing.assert_close(got, w, rtol=1e-5, atol=1e-5)


def test_rms_norm_over_a_dynamic_dim():
    """The normalized (last) dim must be static for the scale of ones; other dims may vary."""
    model, x = Norms().eval(), torch.randn(2, 5, 16)
    batch = torch.export.Dim("batch")
    program = oxport.export(model, (x,), opset_version=23, dynamic_shapes=({0: batch},), verbose=False)
    assert _ops(program)["RMSNormalization"] == 3
    x3 = torch.randn(3, 5, 16)
    with torch.no_grad():
        want = model(x3)
    for got, w in zip(program(x3), want):
        torch.testing.assert_close(got, w, rtol=1e-5, atol=1e-5)


def test_a_norm_over_another_axis_is_left_alone():
    class M(torch.nn.Module):
        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-6)

    x = torch.randn(2, 5, 16)
    program = oxport.export(M(), (x,), opset_version=23, verbose=False)
    assert "RMSNormalization" not in _ops(program)
    torch.testing.assert_close(program(x)[0], M()(x))


def _group_norm(groups, channels, affine=True):
    m = torch.nn.GroupNorm(groups, channels, affine=affine).eval()
    if affine:
        torch.nn.init.normal_(m.weight)
        torch.nn.init.normal_(m.bias)
    return m


@pytest.mark.parametrize("opset", [18, 20, 21, 23])
@pytest.mark.parametrize("case", ["2d", "1d_no_affine", "half"])
def test_group_norm(opset, case):
    torch.manual_seed(0)
    model, x = {"2d": (_group_norm(2, 8), torch.randn(2, 8, 5, 5)),
                "1d_no_affine": (_group_norm(4, 8, affine=False), torch.randn(3, 8, 7)),
                "half": (_group_norm(2, 4).half(), torch.randn(1, 4, 3, 3).half())}[case]
    program = oxport.export(model, (x,), opset_version=opset, verbose=False)
    assert (_ops(program)["GroupNormalization"] == 1) == (opset >= 21)
    with torch.no_grad():
        torch.testing.assert_close(program(x)[0], model(x), rtol=1e-3, atol=1e-3)


def test_group_norm_statistics():
    """native_group_norm's mean and rstd outputs, where a model reads them."""
    class Stats(torch.nn.Module):
        def forward(self, x):
            return torch.ops.aten.native_group_norm.default(x, None, None, 2, 6, 12, 3, 1e-5)

    x = torch.randn(2, 6, 3, 4)
    for opset in (18, 21):
        program = oxport.export(Stats(), (x,), opset_version=opset, verbose=False)
        for got, want in zip(program(x), Stats()(x)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=500, use_cache=False)
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("dynamic", [False, True])
def test_llama_at_opset_23_uses_rotary_rms_and_attention(dynamic):
    model = _tiny_llama()
    ids = torch.randint(0, 500, (2, 7))
    shapes = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")},) if dynamic else None
    program = oxport.export(model, (ids,), opset_version=23, dynamic_shapes=shapes, verbose=False)
    ops = _ops(program)
    assert ops["RotaryEmbedding"] == 4 and ops["RMSNormalization"] == 5 and ops["Attention"] == 2
    assert "Neg" not in ops and ("Cos" in ops) == dynamic      # static caches are constants
    for x in [ids] + ([torch.randint(0, 500, (3, 5)), torch.randint(0, 500, (1, 9))] if dynamic else []):
        with torch.no_grad():
            want = model(x).logits
        torch.testing.assert_close(program(x)[0], want, rtol=1e-4, atol=1e-4)


def test_rotation_with_unequal_halves_is_left_alone():
    """cos over angles whose halves differ is not what RotaryEmbedding computes: no fusion."""
    class M(torch.nn.Module):
        def forward(self, q, e):
            c, s = e.cos().unsqueeze(1), e.sin().unsqueeze(1)
            rot = torch.cat((-q[..., 4:], q[..., :4]), dim=-1)
            return q * c + rot * s

    q, e = torch.randn(2, 3, 5, 8), torch.randn(2, 5, 8)
    program = oxport.export(M(), (q, e), opset_version=23, verbose=False)
    assert "RotaryEmbedding" not in _ops(program)
    torch.testing.assert_close(program(q, e)[0], M()(q, e))


def test_rotation_with_equal_halves_from_an_input():
    class M(torch.nn.Module):
        def forward(self, q, f):
            e = torch.cat((f, f), dim=-1)
            c, s = e.cos().unsqueeze(1), e.sin().unsqueeze(1)
            rot = torch.cat((-q[..., 4:], q[..., :4]), dim=-1)
            return q * c + rot * s

    q, f = torch.randn(2, 3, 5, 8), torch.randn(1, 5, 4)
    program = oxport.export(M(), (q, f), opset_version=23, verbose=False)
    assert _ops(program)["RotaryEmbedding"] == 1
    torch.testing.assert_close(program(q, f)[0], M()(q, f), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [18, 20])
def test_grid_sample(opset):
    torch.manual_seed(0)
    x, g = torch.randn(2, 3, 5, 6), torch.rand(2, 4, 7, 2) * 2.4 - 1.2

    class M(torch.nn.Module):
        def forward(self, x, g):
            return tuple(F.grid_sample(x, g, mode=m, padding_mode=p, align_corners=a)
                         for m in ("bilinear", "nearest", "bicubic") for p in ("zeros", "border", "reflection")
                         for a in (False, True))

    program = oxport.export(M(), (x, g), opset_version=opset, verbose=False)
    for got, want in zip(program(x, g), M()(x, g)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


RNNS = {
    "lstm": lambda: torch.nn.LSTM(4, 6),
    "lstm_2layer_bidir_batch_first": lambda: torch.nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True),
    "lstm_no_bias_3layer": lambda: torch.nn.LSTM(4, 5, num_layers=3, bias=False),
    "gru": lambda: torch.nn.GRU(4, 6),
    "gru_2layer_bidir_batch_first": lambda: torch.nn.GRU(4, 6, num_layers=2, bidirectional=True, batch_first=True),
}


@pytest.mark.parametrize("name", list(RNNS))
def test_recurrent(name):
    torch.manual_seed(0)
    model = RNNS[name]().eval()
    x = torch.randn(3, 5, 4)
    program = oxport.export(model, (x,), verbose=False)
    ops = _ops(program)
    assert ops["LSTM" if "lstm" in name else "GRU"] == model.num_layers
    with torch.no_grad():
        want = torch.utils._pytree.tree_leaves(model(x))
    for got, w in zip(program(x), want):
        torch.testing.assert_close(got, w, rtol=1e-4, atol=1e-5)


def test_recurrent_with_initial_state_and_unbatched_input():
    torch.manual_seed(0)
    lstm, gru = torch.nn.LSTM(3, 4, num_layers=2).eval(), torch.nn.GRU(3, 4).eval()

    class M(torch.nn.Module):
        def forward(self, x, h, c, u):
            return lstm(x, (h, c)), gru(u)

    args = (torch.randn(5, 2, 3), torch.randn(2, 2, 4), torch.randn(2, 2, 4), torch.randn(5, 3))
    program = oxport.export(M(), args, verbose=False)
    with torch.no_grad():
        want = torch.utils._pytree.tree_leaves(M()(*args))
    got = program(*args)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


INTERPOLATE = [   # (input rank, kwargs)
    (4, dict(scale_factor=2, mode="nearest")), (4, dict(size=(5, 7), mode="nearest")),
    (3, dict(scale_factor=3, mode="nearest")), (5, dict(size=(3, 5, 7), mode="nearest")),
    (4, dict(size=(5, 9), mode="nearest-exact")), (4, dict(scale_factor=1.5, mode="nearest-exact")),
    (3, dict(scale_factor=2, mode="linear")), (3, dict(size=7, mode="linear", align_corners=True)),
    (4, dict(size=(5, 7), mode="bilinear")), (4, dict(scale_factor=2.5, mode="bilinear", align_corners=True)),
    (4, dict(size=(3, 2), mode="bilinear")), (5, dict(scale_factor=2, mode="trilinear")),
    (4, dict(size=(7, 9), mode="bicubic")), (4, dict(scale_factor=1.5, mode="bicubic", align_corners=True)),
]


@pytest.mark.parametrize("rank,kw", INTERPOLATE,
                         ids=[f"{kw['mode']}{r - 2}d-{i}" for i, (r, kw) in enumerate(INTERPOLATE)])
def test_interpolate(rank, kw):
    torch.manual_seed(0)
    x = torch.randn(*[2, 3, 4, 6, 5][:rank])

    class M(torch.nn.Module):
        def forward(self, x):
            return F.interpolate(x, **kw)

    program = oxport.export(M(), (x,), verbose=False)
    assert _ops(program)["Resize"] == 1
    torch.testing.assert_close(program(x)[0], M()(x), rtol=1e-4, atol=1e-5)


def test_interpolate_to_a_dynamic_size():
    """Segmentation heads resize to the input's own (dynamic) size."""
    class M(torch.nn.Module):
        def forward(self, x, like):
            return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    x, like = torch.randn(1, 2, 4, 6), torch.randn(1, 1, 8, 9)
    dims = {2: torch.export.Dim("h", min=2), 3: torch.export.Dim("w", min=2)}
    program = oxport.export(M(), (x, like), dynamic_shapes=(None, dims), verbose=False)
    like2 = torch.randn(1, 1, 11, 5)
    torch.testing.assert_close(program(x, like2)[0], M()(x, like2), rtol=1e-4, atol=1e-5)


def test_sampling_ops():
    """Random ops run: samples of the right shape and dtype, in the distribution's support."""
    class M(torch.nn.Module):
        def forward(self, x):
            return (torch.ops.aten.uniform.default(x, -2.0, 3.0), torch.rand_like(x), torch.randn_like(x),
                    torch.randint_like(x, 4, 9), torch.ops.aten.exponential.default(x, 2.0),
                    torch.ops.aten.cauchy.default(x, 1.0, 0.5), torch.ops.aten.geometric.default(x, 0.3),
                    torch.ops.aten.log_normal.default(x, 0.0, 0.5),
                    torch.ops.aten.normal_functional.default(x, 5.0, 0.1),
                    torch.bernoulli(torch.full_like(x, 0.5)), torch.ops.aten.bernoulli.p(x, 0.25))

    x = torch.rand(64, 32)
    program = oxport.export(M(), (x,), verbose=False)
    uni, rand, randn, randint, expo, cauchy, geo, logn, normal, bern, bern_p = program(x)
    for got, want in zip(program(x), M()(x)):
        assert got.shape == want.shape and got.dtype == want.dtype
    assert uni.min() >= -2 and uni.max() < 3 and uni.std() > 0.5
    assert rand.min() >= 0 and rand.max() < 1
    assert abs(randn.mean()) < 0.2 and 0.8 < randn.std() < 1.2
    assert randint.min() >= 4 and randint.max() <= 8 and torch.equal(randint, randint.floor())
    assert expo.min() >= 0 and 0.35 < expo.mean() < 0.65          # mean 1 / lambda
    assert abs(cauchy.median() - 1.0) < 0.2
    assert geo.min() >= 1 and torch.equal(geo, geo.floor())
    assert logn.min() > 0 and abs(logn.log().mean()) < 0.1
    assert abs(normal.mean() - 5.0) < 0.05
    assert set(bern.unique().tolist()) <= {0.0, 1.0} and 0.4 < bern.mean() < 0.6
    assert 0.15 < bern_p.mean() < 0.35


def test_random_factories():
    class M(torch.nn.Module):
        def forward(self, m, s):
            return (torch.rand(50, 40), torch.randn(50, 40), torch.randint(3, 7, (50, 40)), torch.randint(5, (50, 40)),
                    torch.normal(2.0, 0.5, (50, 40)), torch.normal(m, s))

    m, s = torch.full((50, 40), 3.0), torch.full((50, 40), 0.1)
    program = oxport.export(M(), (m, s), verbose=False)
    rand, randn, ri_low, ri, nrm, nrm_t = program(m, s)
    for got, want in zip(program(m, s), M()(m, s)):
        assert got.shape == want.shape and got.dtype == want.dtype
    assert rand.min() >= 0 and rand.max() < 1 and 0.8 < randn.std() < 1.2
    assert ri_low.min() >= 3 and ri_low.max() <= 6 and ri.min() >= 0 and ri.max() <= 4
    assert abs(nrm.mean() - 2.0) < 0.05 and abs(nrm_t.mean() - 3.0) < 0.02


def test_batch_norm_folded_into_gemm():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                            torch.nn.Linear(8, 3, bias=False), torch.nn.BatchNorm1d(3)).eval()
    for bn in (m[1], m[4]):
        torch.nn.init.normal_(bn.running_mean)
        torch.nn.init.uniform_(bn.running_var, 0.5, 2)
        torch.nn.init.normal_(bn.weight)
        torch.nn.init.normal_(bn.bias)
    x = torch.randn(4, 6)
    program = oxport.export(m, (x,), verbose=False)
    assert [n.op_type for n in program.model_proto.graph.node] == ["Gemm", "Relu", "Gemm"]
    with torch.no_grad():
        torch.testing.assert_close(program(x)[0], m(x))
