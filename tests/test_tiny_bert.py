"""TinyBERT and its modules: the parameter names and shapes the issue fixes, BERT's initialisation, the forward
pass against a float64 NumPy reference written here, gradients against finite differences, the loss at
initialisation, clear errors for bad ids, and the grouping of tensors by kind."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lamb_edu import Tensor, backend, nn, optim
from lamb_edu.backend import to_numpy

V, CONTEXT, D, LAYERS, HEADS, FF = 11, 8, 12, 2, 3, 20


def expected_shapes(vocab, context, d, layers, d_ff):
    shapes = {"embeddings.token.weight": (vocab, d), "embeddings.position.weight": (context, d),
              "embeddings.norm.weight": (d,), "embeddings.norm.bias": (d,)}
    for i in range(layers):
        for name in ("query", "key", "value", "output"):
            shapes[f"layers.{i}.attention.{name}.weight"] = (d, d)
            shapes[f"layers.{i}.attention.{name}.bias"] = (d,)
        shapes.update({f"layers.{i}.attention_norm.weight": (d,), f"layers.{i}.attention_norm.bias": (d,),
                       f"layers.{i}.ffn.intermediate.weight": (d_ff, d), f"layers.{i}.ffn.intermediate.bias": (d_ff,),
                       f"layers.{i}.ffn.output.weight": (d, d_ff), f"layers.{i}.ffn.output.bias": (d,),
                       f"layers.{i}.ffn_norm.weight": (d,), f"layers.{i}.ffn_norm.bias": (d,)})
    shapes.update({"head.transform.weight": (d, d), "head.transform.bias": (d,), "head.norm.weight": (d,),
                   "head.norm.bias": (d,), "head.bias": (vocab,)})
    return shapes


def test_parameter_names_and_shapes_are_exactly_the_issues():
    model = nn.TinyBERT(66, 64, seed=0)
    got = {name: p.shape for name, p in model.named_parameters()}
    assert got == expected_shapes(66, 64, 128, 2, 512)
    assert list(got) == list(expected_shapes(66, 64, 128, 2, 512))  # and in this order
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert sum(p.size for p in model.parameters()) == 66 * 128 + 64 * 128 + 2 * 128 + 2 * (
        4 * (128 * 128 + 128) + 2 * 2 * 128 + 2 * 128 * 512 + 512 + 128) + 128 * 128 + 128 + 2 * 128 + 66


def test_bert_initialisation():
    model = nn.TinyBERT(300, 64, d_model=64, seed=1)
    for name, p in model.named_parameters():
        values = to_numpy(p.data)
        if name.endswith("norm.weight"):
            assert np.all(values == 1), name
        elif name.endswith("bias"):
            assert np.all(values == 0), name
        else:  # weights and embeddings: normal(0, 0.02²)
            assert abs(values.std() - 0.02) < 0.002 and abs(values.mean()) < 0.002, name
    layer_norms = [m for m in (model.embeddings.norm, model.layers[0].ffn_norm, model.head.norm)]
    assert all(norm.eps == 1e-12 for norm in layer_norms)


def test_seeds_fix_the_model():
    first, again, other = (nn.TinyBERT(V, CONTEXT, D, LAYERS, HEADS, FF, seed=s) for s in (3, 3, 4))
    for (name, a), b, c in zip(first.named_parameters(), again.parameters(), other.parameters()):
        np.testing.assert_array_equal(to_numpy(a.data), to_numpy(b.data))
        if not (name.endswith("bias") or name.endswith("norm.weight")):
            assert not np.array_equal(to_numpy(a.data), to_numpy(c.data)), name


# ------------------------------------------------------------------------------- the NumPy reference
def np_layer_norm(x, w, b):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12) * w + b


def np_gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def reference_logits(state, ids, heads):
    """TinyBERT's forward pass in float64 NumPy, from the issue's equations and a state_dict."""
    s = {k: v.astype(np.float64) for k, v in state.items()}
    batch, seq = ids.shape
    x = np_layer_norm(s["embeddings.token.weight"][ids] + s["embeddings.position.weight"][:seq],
                      s["embeddings.norm.weight"], s["embeddings.norm.bias"])
    i = 0
    while f"layers.{i}.attention.query.weight" in s:
        p = f"layers.{i}."

        def project(name, h, p=p):
            return h @ s[p + name + ".weight"].T + s[p + name + ".bias"]

        def split(h):
            return h.reshape(batch, seq, heads, -1).transpose(0, 2, 1, 3)

        q, k, v = (split(project(f"attention.{n}", x)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1])
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        attended = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, seq, -1)
        x = np_layer_norm(x + project("attention.output", attended), s[p + "attention_norm.weight"],
                          s[p + "attention_norm.bias"])
        ffn = project("ffn.output", np_gelu(project("ffn.intermediate", x)))
        x = np_layer_norm(x + ffn, s[p + "ffn_norm.weight"], s[p + "ffn_norm.bias"])
        i += 1
    h = np_layer_norm(np_gelu(x @ s["head.transform.weight"].T + s["head.transform.bias"]),
                      s["head.norm.weight"], s["head.norm.bias"])
    return h @ s["embeddings.token.weight"].T + s["head.bias"]


def random_state(model, seed):
    """Every parameter random (LayerNorm and biases included), so the reference sees each one used."""
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=p.shape) * (0.3 if p.ndim == 2 else 1.0) for name, p in model.named_parameters()}


def test_forward_matches_the_numpy_reference():
    model = nn.TinyBERT(V, CONTEXT, D, LAYERS, HEADS, FF, seed=0, dtype=np.float64)
    state = random_state(model, 5)
    model.load_state_dict(state)
    ids = np.random.default_rng(6).integers(0, V, size=(3, 5))  # seq < context
    logits = model(ids)
    assert logits.shape == (3, 5, V)
    np.testing.assert_allclose(to_numpy(logits.data), reference_logits(state, ids, HEADS), rtol=1e-10, atol=1e-10)
    as_float32 = nn.TinyBERT(V, CONTEXT, D, LAYERS, HEADS, FF, seed=0)
    as_float32.load_state_dict(state)
    got = as_float32(ids)
    assert got.dtype == np.float32
    np.testing.assert_allclose(to_numpy(got.data), reference_logits(state, ids, HEADS), rtol=1e-3, atol=1e-3)


def test_gradients_of_the_whole_model_match_finite_differences():
    model = nn.TinyBERT(V, CONTEXT, 6, 1, 2, 10, seed=0, dtype=np.float64)
    model.load_state_dict(random_state(model, 7))
    rng = np.random.default_rng(8)
    ids = rng.integers(0, V, size=(2, 4))
    targets = np.where(rng.random((2, 4)) < 0.5, rng.integers(0, V, size=(2, 4)), -100)
    targets[0, 0] = 3

    def loss():
        return nn.masked_lm_cross_entropy(model(ids), targets)

    loss().backward()
    step = 1e-6
    for name, p in model.named_parameters():  # a few entries of every tensor, the tied token table included
        grad = to_numpy(p.grad)
        flat = p.data.reshape(-1)
        for index in rng.choice(p.size, size=min(3, p.size), replace=False):
            original = flat[index]
            flat[index] = original + step
            plus = loss().item()
            flat[index] = original - step
            minus = loss().item()
            flat[index] = original
            numeric = (plus - minus) / (2 * step)
            assert abs(grad.reshape(-1)[index] - numeric) < 1e-6 * max(1.0, abs(numeric)), (name, index)


def test_masked_lm_loss_at_initialisation_is_log_vocab():
    model = nn.TinyBERT(66, 32, d_model=32, n_layers=2, n_heads=4, d_ff=64, seed=0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 66, size=(16, 32))
    targets = np.where(rng.random((16, 32)) < 0.15, ids, -100)
    loss = nn.masked_lm_cross_entropy(model(ids), targets).item()
    assert abs(loss - math.log(66)) < 0.1, loss


def test_bad_ids_are_refused_and_change_nothing():
    model = nn.TinyBERT(V, CONTEXT, D, LAYERS, HEADS, FF, seed=0)
    before = model.state_dict()
    cases = [(np.full((2, 3), V), rf"\[0, {V}\)"), (np.full((2, 3), -1), rf"\[0, {V}\)"),
             (np.zeros((2, CONTEXT + 1), int), f"context={CONTEXT}"), (np.zeros((2, 3)), "integer"),
             (np.zeros(3, int), r"\(batch, seq\)"), (np.zeros((2, 0), int), "1 <= seq"),
             (Tensor(np.zeros((2, 3))), "integer")]
    for ids, match in cases:
        with pytest.raises(ValueError, match=match):
            model(ids)
    for name, values in model.state_dict().items():
        np.testing.assert_array_equal(values, before[name])
    assert all(p.grad is None for p in model.parameters())
    assert model(Tensor(np.zeros((1, 2), np.int64), dtype=np.int64)).shape == (1, 2, V)  # integer Tensors are fine


def test_bad_sizes_are_refused():
    for kwargs, match in [(dict(d_model=10, n_heads=3), "dividing"), (dict(n_layers=0), "positive"),
                          (dict(d_ff=2.5), "positive integer")]:
        with pytest.raises(ValueError, match=match):
            nn.TinyBERT(V, CONTEXT, **kwargs)
    with pytest.raises(ValueError, match="n_heads"):
        nn.MultiHeadSelfAttention(12, 5)
    with pytest.raises(ValueError, match="positive"):
        nn.Embedding(0, 3)
    with pytest.raises(ValueError, match="last axis has size 4"):
        nn.LayerNorm(4)(Tensor(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"\(batch, seq, 12\)"):
        nn.MultiHeadSelfAttention(12, 3, seed=0)(Tensor(np.zeros((2, 12))))


def test_modules_on_their_own():
    layer = nn.TransformerEncoderLayer(D, HEADS, FF, seed=0)
    x = Tensor(np.random.default_rng(0).normal(size=(2, 5, D)).astype(np.float32), requires_grad=True)
    out = layer(x)
    assert out.shape == (2, 5, D) and out.dtype == np.float32
    np.testing.assert_allclose(to_numpy(out.data).mean(-1), 0, atol=1e-5)  # post-LN: each position normalised
    out.sum().backward()
    assert x.grad.shape == x.shape and all(p.grad is not None for p in layer.parameters())
    names = [name for name, _ in layer.named_parameters()]
    assert names[:2] == ["attention.query.weight", "attention.query.bias"] and names[-1] == "ffn_norm.bias"
    table = nn.Embedding(5, 3, seed=0, std=1.0)
    np.testing.assert_array_equal(to_numpy(table(np.array([4, 0])).data), to_numpy(table.weight.data)[[4, 0]])


def test_a_few_adam_steps_learn_a_tiny_batch():
    model = nn.TinyBERT(V, CONTEXT, D, LAYERS, HEADS, FF, seed=0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, size=(4, CONTEXT))
    targets = np.where(rng.random((4, CONTEXT)) < 0.5, ids, -100)
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = nn.masked_lm_cross_entropy(model(ids), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_parameters_grouped_by_kind():
    model = nn.TinyBERT(V, CONTEXT, D, LAYERS, HEADS, FF, seed=0)
    groups = nn.group_by_kind(name for name, _ in model.named_parameters())
    assert list(groups) == ["embeddings", "query", "key", "value", "attention output", "FFN", "LayerNorm γ",
                            "LayerNorm β", "biases", "head"]
    assert groups["embeddings"] == ["embeddings.token.weight", "embeddings.position.weight"]
    assert groups["query"] == ["layers.0.attention.query.weight", "layers.1.attention.query.weight"]
    assert groups["FFN"] == [f"layers.{i}.ffn.{n}.weight" for i in range(2) for n in ("intermediate", "output")]
    assert len(groups["LayerNorm γ"]) == len(groups["LayerNorm β"]) == 2 + 2 * LAYERS
    assert groups["head"] == ["head.transform.weight"] and "head.bias" in groups["biases"]
    assert sum(len(names) for names in groups.values()) == len(model.parameters())
    with pytest.raises(ValueError, match="not a TinyBERT parameter"):
        nn.parameter_kind("fc1.weight")


@pytest.mark.skipif(backend.is_gpu(), reason="compares float64 on the host")
def test_same_logits_and_gradients_as_pytorch():
    torch = pytest.importorskip("torch")
    from benchmarks.torch_tiny_bert import TorchTinyBERT

    model = nn.TinyBERT(V, CONTEXT, D, LAYERS, HEADS, FF, seed=0, dtype=np.float64)
    state = random_state(model, 9)
    model.load_state_dict(state)
    reference = TorchTinyBERT(V, CONTEXT, D, LAYERS, HEADS, FF).double()
    reference.load_state_dict({name: torch.from_numpy(values) for name, values in state.items()}, strict=True)
    rng = np.random.default_rng(10)
    ids = rng.integers(0, V, size=(3, CONTEXT))
    targets = np.where(rng.random((3, CONTEXT)) < 0.3, rng.integers(0, V, size=(3, CONTEXT)), -100)
    loss = nn.masked_lm_cross_entropy(model(ids), targets)
    loss.backward()
    logits = reference(torch.from_numpy(ids))
    torch_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(targets).reshape(-1))
    torch_loss.backward()
    assert abs(loss.item() - torch_loss.item()) < 1e-10
    grads = {name: p.grad.numpy() for name, p in reference.named_parameters()}
    for name, p in model.named_parameters():
        np.testing.assert_allclose(to_numpy(p.grad), grads[name], rtol=1e-8, atol=1e-10, err_msg=name)
