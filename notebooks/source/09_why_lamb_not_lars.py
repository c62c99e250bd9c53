# %% [markdown]
# # 9. Why LAMB and not LARS: a tiny BERT on Shakespeare
#
# LAMB was made for BERT. The LAMB paper (You et al. 2019) starts from LARS, the layer-wise rule that
# trains ResNets at huge batches, reports that LARS does badly on BERT, and puts Adam's per-coordinate
# direction under LARS's per-tensor trust ratio: that is LAMB. A later "reality check" (Nado et al. 2021)
# answers that a well-tuned AdamW matches LAMB on BERT too. Notebook 6 measured the same four optimizers on
# an MLP, where LARS did fine. This notebook builds the network the rule was made for, a (very) small BERT
# that learns to fill in masked characters of Shakespeare, and asks both questions of it.
#
# **You will learn**
# - how self-attention and LayerNorm are built from the tiny autograd of notebook 2's kind, and checked;
# - what one masked-language-model step is: BERT's 15 % masking, the loss on masked positions only;
# - why the trust ratios of a transformer's tensors differ by orders of magnitude, kind by kind, and what
#   that does to LARS (SGD direction) and to LAMB (Adam direction);
# - what a tuned study of AdamW, LARS, LAMB and SGD with Nesterov momentum at batch sizes from 16 to 2048
#   says on this model, and what a model this small can and cannot tell about BERT;
# - how to play with a trained model: `lamb-edu fill RUN "To be, or n_t to be"`.

# %%
QUICK = False  # True: the small, fast settings; the committed outputs use the setting printed below

# %matplotlib inline
import json
import math
from pathlib import Path

import numpy as np

from lamb_edu import data, experiments, nn, optim, plots, train
from lamb_edu.autograd import Tensor
from lamb_edu.train.fill import fill_blanks

QUICK = experiments.quick_mode(default=QUICK)  # LAMB_EDU_QUICK=1 (as in CI) forces quick mode
print("mode:", "quick" if QUICK else "full")

# %% [markdown]
# ## The data: characters, windows, masks
#
# The text is karpathy's tiny Shakespeare (1 115 394 characters). Each of its 65 distinct characters is one
# token, plus a 66th, the mask token. The first 90 % trains, the last 10 % validates, both cut into windows
# of `context` characters. BERT's masking chooses 15 % of the positions of each window; of those, 80 %
# become the mask token, 10 % a random character and 10 % stay as they were, and the model must predict
# the original character at all of them (`_` shows the mask token below).

# %%
text = data.load_tiny_shakespeare()
task = train.MaskedLM(text, context=32, validation_windows=256)
print(f"{len(text.text):,} characters, vocabulary of {len(text.vocabulary)} + mask: {text.vocabulary!r}")
print(f"{task.size:,} training windows of {task.context}; {len(task.validation[0])} validation windows scored")
inputs, targets = next(iter(task.batches(task.size, 4, seed=0, epoch=0)))
for x, y in zip(inputs[:3], targets[:3]):
    print("input :", repr(text.decode(x)))
    print("target:", repr("".join(text.vocabulary[t] if t >= 0 else "·" for t in y)))

# %% [markdown]
# ## Attention and LayerNorm from the tiny autograd
#
# Scaled dot-product attention mixes the values $V$ of all positions with weights given by how well each
# query matches each key:
#
# $$\operatorname{attention}(Q,K,V) = \operatorname{softmax}\!\Big(\frac{QK^\top}{\sqrt{d_\text{head}}}\Big)V,$$
#
# and LayerNorm normalises each position's vector over its features, then scales and shifts it:
#
# $$\operatorname{LN}(x) = \gamma\odot\frac{x-\mu}{\sqrt{\sigma^2+\epsilon}} + \beta,\qquad
#   \mu = \tfrac1D\textstyle\sum_i x_i,\quad \sigma^2 = \tfrac1D\sum_i (x_i-\mu)^2 .$$
#
# Both can be written with nothing but the `Tensor` operations of the autograd (matrix products, `exp`,
# sums, powers). `nn.functional` has each as one graph node with a hand-written gradient, which is faster;
# the cell below checks that both ways give the same values and the same gradients.

# %%
def attention_by_hand(q, k, v):
    scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(q.shape[-1]))
    weights = scores.log_softmax(axis=-1).exp()  # softmax, stable: log-sum-exp inside log_softmax
    return weights @ v


def layer_norm_by_hand(x, gamma, beta, eps=1e-12):
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred * (variance + eps) ** -0.5 * gamma + beta


rng = np.random.default_rng(0)
shape = (2, 4, 5, 8)  # (batch, heads, seq, d_head)
for name, by_hand, node, arrays in (
    ("attention", attention_by_hand, nn.functional.scaled_dot_product_attention,
     [rng.normal(size=shape) for _ in range(3)]),
    ("LayerNorm", layer_norm_by_hand, lambda x, g, b: nn.functional.layer_norm(x, g, b, 1e-12),
     [rng.normal(size=(3, 5, 8)), rng.normal(size=8), rng.normal(size=8)]),
):
    results = []
    for function in (by_hand, node):
        tensors = [Tensor(a, requires_grad=True, dtype=np.float64) for a in arrays]
        out = function(*tensors)
        (out * Tensor(np.linspace(-1, 1, out.size).reshape(out.shape))).sum().backward()
        results.append((out.data, [t.grad for t in tensors]))
    value_gap = np.abs(results[0][0] - results[1][0]).max()
    grad_gap = max(np.abs(a - b).max() for a, b in zip(results[0][1], results[1][1]))
    print(f"{name}: by hand and as one node differ by {value_gap:.1e} (values), {grad_gap:.1e} (gradients)")

# %% [markdown]
# ## One masked-LM step by hand
#
# `nn.TinyBERT` is BERT's architecture, small: token and position embeddings, then each layer
# `x = LN(x + attention(x)); x = LN(x + FFN(x))` (post-LN, as BERT), then a head that maps back onto the
# token embedding (tied weights). Its loss is the mean cross-entropy over the **masked positions only**:
#
# $$\mathcal L = -\frac{1}{|M|}\sum_{(b,t)\in M}\log \operatorname{softmax}(z_{b,t})_{y_{b,t}} .$$
#
# Below: the loss by hand from the logits, against `nn.masked_lm_cross_entropy`; at initialisation it is
# close to $\ln 66$ (every character equally likely). Then one LAMB step, with the trust ratio of one
# tensor computed by hand: $r = \lVert w\rVert / \lVert u\rVert$ with $u = \hat m/(\sqrt{\hat v}+\epsilon) + \lambda w$.

# %%
model = nn.TinyBERT(text.vocab_size, 32, d_model=64, n_layers=2, n_heads=4, d_ff=256, seed=0)
logits = model(inputs)
chosen = targets != -100
log_probs = logits.data - logits.data.max(-1, keepdims=True)
log_probs = log_probs - np.log(np.exp(log_probs).sum(-1, keepdims=True))
by_hand = -log_probs[chosen, targets[chosen]].mean()
loss = nn.masked_lm_cross_entropy(logits, targets)
print(f"loss by hand {by_hand:.5f}, nn.masked_lm_cross_entropy {loss.item():.5f}, ln 66 = {math.log(66):.5f}")

lamb = optim.LAMB(model.named_parameters(), lr=0.01, weight_decay=0.01, eps=1e-6)
loss.backward()
w = model.embeddings.token.weight
before = w.data.copy()
m_hat, v_hat = w.grad, w.grad**2  # after one step: m̂ = g, v̂ = g² (bias correction undoes (1-β))
u = m_hat / (np.sqrt(v_hat) + 1e-6) + 0.01 * before
ratio = np.linalg.norm(before) / np.linalg.norm(u)
lamb.step()
print(f"token embedding: trust ratio by hand {ratio:.5f}, LAMB recorded {lamb.state[w]['trust_ratio']:.5f}; "
      f"step size ‖Δw‖ = {np.linalg.norm(w.data - before):.5f} = lr·r·‖u‖ = {0.01 * ratio * np.linalg.norm(u):.5f}")

# %% [markdown]
# ## The study
#
# AdamW, LARS, LAMB and SGD with Nesterov momentum train the same tiny BERT (context 32, $d_\text{model}$ 64,
# 2 layers, 4 heads) for one **fixed budget of training tokens** at four batch sizes: a batch 128 times
# larger takes 128 times fewer steps. Every run warms up over 10 % of its steps, then decays linearly to
# zero. Each optimizer is **tuned at each batch size with the same number of trials**: learning rates drawn
# quasi-randomly (a scrambled Halton sequence, `experiments.tuning`) from a range around its lr at the
# smallest batch scaled by its rule (square root for AdamW and LAMB, linear for SGD and LARS); the trial with
# the lowest validation loss is trained again from two more seeds. The full study takes about an hour on two
# cores; the notebook reads its numbers from `figures/results.json` when `lamb-edu reproduce tiny_bert` has
# written them, and otherwise runs it (quick mode: a smaller model and budget, two batch sizes, one trial).

# %%
results_path = Path("..") / "figures" / "results.json"
saved = json.loads(results_path.read_text()).get("tiny_bert") if results_path.exists() else None
if not QUICK and saved is not None and saved.get("mode") == "full":
    result = experiments.TinyBertResult.from_summary(saved)
    print(f"read the full study from {results_path} ({len(result.runs)} runs, {result.seconds / 60:.0f} minutes)")
else:
    result = experiments.tiny_bert(quick=QUICK)
    print(f"ran the study: {len(result.runs)} runs in {result.seconds:.0f} s")
settings = result.settings
print(f"context {settings.context}, d_model {settings.d_model}, {settings.layers} layers, {settings.heads} heads; "
      f"{settings.token_budget:,} training tokens per run; {settings.trials} trial(s) per (optimizer, batch)")
print(f"{'optimizer':>9} {'batch':>6} {'tokens/step':>11} {'steps':>6} {'lr':>9}  accuracy % (each seed)    bits/char")
for row in result.table():
    seeds = ", ".join(f"{100 * a:.1f}" for a in row["accuracy"])
    bits = ", ".join(f"{b:.2f}" for b in row["bits_per_char"])
    print(f"{row['optimizer']:>9} {row['batch_size']:>6} {row['tokens_per_step']:>11} {row['steps']:>6} "
          f"{row['lr']:>9.3g}  {100 * row['mean_accuracy']:5.1f} ({seeds})  {bits}")

# %%
figures = plots.tiny_bert_figures(result)
figures["tiny_bert_curves.png"]

# %% [markdown]
# The curves show the thing to know about this model: for a long stretch it sits on a **plateau** at
# the unigram level (it guesses the most frequent characters, mostly a space), then it **crosses**:
# attention learns to look at the neighbours of a mask and the accuracy climbs. Whether and when a run
# crosses decides everything else. With a fixed token budget a large batch has few steps, so it may
# never get there.

# %%
figures["tiny_bert_accuracy_vs_batch.png"]

# %% [markdown]
# ## Trust ratios by kind of tensor
#
# LARS and LAMB give every tensor its own step size through its trust ratio. In a transformer the tensors
# are of very different kinds: embedding tables whose rows are touched only when their character occurs,
# LayerNorm gains $\gamma$ that start at 1, biases that start at 0, attention and FFN weight matrices. The
# figure shows the median trust ratio, $\lVert w\rVert$ and $\lVert u\rVert$ of each kind over the chosen
# run at the smallest batch.

# %%
figures["tiny_bert_trust_by_kind.png"]

# %%
print("\n".join(result.verdict()))

# %% [markdown]
# ### Reading it
#
# - **LARS's update is the gradient** (with momentum), scaled per tensor. The gradient of an embedding
#   row is large only when its character is in the batch (the tied decoder gives every row a little), and
#   the gradient of $\gamma$ has nothing to do with its size; one ratio per tensor cannot fix the scale
#   *inside* a tensor, so rare rows and small coordinates barely move while the common ones set the step.
# - **LAMB's update is Adam's direction**, $\hat m/(\sqrt{\hat v}+\epsilon)$, which is about $\pm 1$ per
#   coordinate whatever the gradient's scale: rare embedding rows and LayerNorm gains move as fast as
#   the rest, and the trust ratio then sets each tensor's step relative to its norm. That is the LAMB
#   paper's argument: LARS lacks the per-coordinate part.
# - **AdamW has the per-coordinate part without the per-tensor ratio.** The reality check's point is that
#   this is often enough when it is tuned as carefully. The table above is this model's answer; the
#   verdict lines are computed from it.
#
# **What a model this small cannot tell.** The real question is about BERT-Large (340 M parameters) at
# batches of 32 768 to 65 536 sequences of 512 tokens, trained for a fixed number of epochs on billions of
# tokens; here a 0.1 M-parameter model sees about a million characters. The plateau-then-crossing is
# shared with real BERT pre-training, but the sizes at which batch scaling stops, the tuned learning
# rates and the trust ratios' ranges all change with scale. Read the study as a lab exercise that shows
# the mechanism and how to compare optimizers fairly, not as a ruling on BERT.

# %% [markdown]
# ## Fill in the blanks
#
# A trained model guesses each `_` of a line (the same as `lamb-edu fill RUN "To be, or n_t to be"` does
# with a run folder of `lamb-edu train --model tiny-bert`). Here a model is trained for a short while in
# the notebook (AdamW, the study's smallest batch).

# %%
demo = nn.TinyBERT(text.vocab_size, 32, d_model=32 if QUICK else 64, n_layers=2, n_heads=4,
                   d_ff=128 if QUICK else 256, seed=0)
windows = 2_000 if QUICK else 31_250  # one pass over 64 000 or 1 000 000 training characters
adamw = optim.AdamW(demo.named_parameters(), lr=0.003, weight_decay=0.01, eps=1e-6)
steps = math.ceil(windows / 16)
schedule = optim.schedules.LRScheduler(adamw, optim.schedules.WarmupPolynomialDecay(steps // 10, steps))
history = train.fit(demo, adamw, task, epochs=1, batch_size=16, train_size=windows, scheduler=schedule, progress=False)
scores = history.epochs[-1]
print(f"{steps} steps: validation masked accuracy {100 * scores['test_accuracy']:.1f} %, "
      f"{scores['bits_per_char']:.2f} bits per character")
for line in ("To be, or n_t to be", "First Cit_zen:", "My l_rd, the k_ng is c_ming."):
    filled, blanks = fill_blanks(demo, text.vocabulary, line)
    guesses = "  ".join(f"{b.guesses[0][0]!r} {100 * b.guesses[0][1]:.0f} %" for b in blanks)
    print(f"{line!r:34} -> {filled!r:34} {guesses}")

# %% [markdown]
# ## Exercises
#
# 1. **Masking by hand.** In a window of 32 characters, how many positions does BERT's masking choose
#    (round(15 %))? Of 1000 such windows, about how many chosen positions show the mask token, a random
#    character, the original character? Why keep some originals at all?
# 2. **The trust ratio of a bias at step 1.** A bias starts at zero. What trust ratio does LAMB give it on
#    the first step, and what step does it take? (Look at `optim.functional.trust_ratio`.)
# 3. **A rare embedding row.** The character `'Z'` is rare. Compare, for the token embedding, the gradient
#    of the row of `'Z'` with that of the space in one batch. What does LARS do with each row's step, and
#    what does LAMB do?
# 4. **Play.** Train your own with `lamb-edu train --model tiny-bert --epochs 1 --batch-size 16 --optimizer
#    adamw --lr 0.003 --warmup-steps 200` and ask it to `fill` lines of your choice. Which blanks are easy?
#
# ## Solutions
#
# <details><summary>1.</summary>
#
# round(0.15·32) = 5 positions per window, so 5000 in 1000 windows: about 4000 mask tokens, 500 random
# characters and 500 unchanged (a random character equals the original 1 time in 65, so slightly more
# than 500 look unchanged). The originals and random characters keep the model from learning that only
# mask tokens need predicting: at fine-tuning time there are no mask tokens.
# </details>
#
# <details><summary>2.</summary>
#
# $\lVert w\rVert = 0$, and the rule says the ratio is 1 when either norm is 0, so the first step is the
# plain Adam step times the lr: about lr per coordinate. The next step has $\lVert w\rVert \approx$ lr·√n and
# a ratio near lr, so the bias grows slowly from there. The cell below shows the recorded ratios.
# </details>

# %%
probe = nn.TinyBERT(text.vocab_size, 32, d_model=64, n_layers=2, n_heads=4, d_ff=256, seed=1)
probe_lamb = optim.LAMB(probe.named_parameters(), lr=0.01, weight_decay=0.01, eps=1e-6)
for step in range(2):
    x, y = next(iter(task.batches(task.size, 16, seed=step, epoch=0)))
    probe.zero_grad()
    nn.masked_lm_cross_entropy(probe(x), y).backward()
    probe_lamb.step()
    bias = probe.head.bias
    print(f"step {step + 1}: head.bias trust ratio {probe_lamb.state[bias]['trust_ratio']:.4g}, "
          f"‖w‖ after {np.linalg.norm(bias.data):.4g}")

# %% [markdown]
# <details><summary>3.</summary>
#
# A row of the token embedding gets gradient from two places. At the input, from the positions where
# its character occurs: nothing for `'Z'` in most batches, a lot for the space. At the output, because
# the decoder is tied to the embedding, from every masked position's softmax, which pushes the logit of
# every character that was not the target down a little: so `'Z'` still gets a small gradient, many
# times smaller than the space's (the cell below). LARS steps along the gradient, scaled for the whole
# table: the space row moves, the `'Z'` row barely does. LAMB divides each coordinate by its own running
# $\sqrt{\hat v}$, so the `'Z'` row moves about as far per step as the space row, in its own direction.
# </details>

# %%
probe.zero_grad()
x, y = next(iter(task.batches(task.size, 64, seed=5, epoch=0)))
nn.masked_lm_cross_entropy(probe(x), y).backward()
grad = probe.embeddings.token.weight.grad
for char in (" ", "e", "Z"):
    print(f"{char!r}: occurs {int((x == text.vocabulary.index(char)).sum())} times in the batch, "
          f"gradient row norm {np.linalg.norm(grad[text.vocabulary.index(char)]):.3g}")

# %% [markdown]
# <details><summary>4.</summary>
#
# Blanks inside common words (`n_t`, `th_`) are easy: the neighbours decide them. The first letter of a
# name or a blank after a space is hard: many characters fit. A model at 40 % masked accuracy is right
# about half the time on such a line.
# </details>
#
# ## Summary
#
# - A tiny BERT built from the tiny autograd learns to fill in masked characters, after a plateau at the
#   unigram level that it must cross; a fixed token budget gives large batches few steps to cross it.
# - Per kind of tensor the trust ratios differ by orders of magnitude: LARS's per-tensor ratio on an SGD
#   direction cannot fix the scale inside an embedding table or between LayerNorm gains and weights; LAMB's
#   Adam direction does it per coordinate, and AdamW has that part too.
# - The study's table and verdict lines above are this model's answer, with tuning budgets, seeds and a
#   validation split stated; what they say about BERT at scale is limited, and the notebook says how.
