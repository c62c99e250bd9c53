# %% [markdown]
# # 3. The trust ratio during training, and which code the article ran
#
# LAMB multiplies each layer's Adam step by a **trust ratio** $r = r_1 / r_2$, a statistic of the layer's
# weights over the same statistic of its update. The article logs $r$, $r_1$ and $r_2$ of every layer
# during MNIST training, for LAMB and for an Adam baseline that computes the ratio without using it, and
# draws them as TensorBoard histograms. This notebook does the same with ridge plots, and then asks the
# question a careful reader asks first: which version of the code produced the article's numbers?
#
# **You will learn**
# - what $r_1$, $r_2$ and $r$ are for each layer, and how to read them off an optimizer's state;
# - why $r$ starts far below 1 (LAMB's built-in warm-up) and what sets its first value (not the
#   number of weights);
# - how to find, from a repository's history, the code a write-up actually ran, and what changes when
#   you reproduce it with the wrong version.

# %%
QUICK = False  # True: the small, fast settings; the committed outputs use the setting printed below

# %matplotlib inline
from lamb_edu import Tensor, classroom, experiments, optim, plots

QUICK = experiments.quick_mode(default=QUICK)  # LAMB_EDU_QUICK=1 (as in CI) forces quick mode
print("mode:", "quick" if QUICK else "full")

# %% [markdown]
# ## The three numbers of each layer
#
# The article ran cybertronai/pytorch-lamb as it was in May 2019 (commit ff2245e, `optim.LAMB2019`; the
# section "Which code did the article run?" below shows how we know). For a parameter tensor $w$ (a
# weight matrix or a bias vector) with $n$ entries, Adam's direction $a = m/(\sqrt v + \epsilon)$ and the
# step size $s_t = \eta\sqrt{1-\beta_2^t}/(1-\beta_1^t)$ (notebook 4):
#
# $$r_1 = \mathrm{RMS}(w) = \frac{\lVert w\rVert}{\sqrt n}, \qquad r_2 = \mathrm{RMS}(a) = \frac{\lVert a\rVert}{\sqrt n},
#   \qquad r = \min\Big(\frac{r_1}{r_2}, 10\Big), \qquad w \leftarrow w - s_t\, r\, a .$$
#
# Root mean squares, not norms ("L2 norm uses sum, but here since we're dividing, use mean to avoid
# overflow", says the code), and the clamp acts on the ratio. The June 2019 code (commit 207f672,
# `optim.LAMB(bias_correction=False)`) logs norms and clamps the weight norm instead:
# $r_1 = \lVert w\rVert$, $r_2 = \lVert u\rVert$ with $u = m/(\sqrt v+\epsilon) + \lambda w$, $r = \min(r_1, 10)/r_2$.
# The ratio $r_1/r_2$ is the same under both (the $\sqrt n$ cancel); $r_1$ and $r_2$ on their own differ
# by $\sqrt n$, which is why the article's histograms of $r_1$ sit near 0.02-0.1 rather than near 10.
# After every step `optim.LAMB2019` keeps `r`, `r1` and `r2` in `optimizer.state[p]` (and the norms,
# which `train.fit` logs; `MnistRun.r1` and `r2` turn them back into what the run's rule calls $r_1$, $r_2$).
#
# **Why $r$ starts below 1.** At the first step $m_1 = (1-\beta_1)g$ and $v_1 = (1-\beta_2)g^2$, so every
# entry of $a$ is
# $\frac{(1-\beta_1)g}{\sqrt{1-\beta_2}\,\lvert g\rvert+\epsilon} \approx \operatorname{sign}(g)$
# for $\beta = (0.9, 0.99)$ (less where $\lvert g\rvert$ is tiny next to $\epsilon/\sqrt{1-\beta_2}$). So
# $r_2 \approx 1$ and the first $r \approx r_1 = \mathrm{RMS}(w)$: the size of one weight at initialisation,
# **whatever the number of weights** (under the June rule $\lVert w\rVert$ and $\lVert u\rVert$ both grow as
# $\sqrt n$, and the ratio is the same RMS, except that the clamp lowers it for a layer whose
# $\lVert w\rVert$ starts above 10). PyTorch-style initialisation draws weights and biases uniformly in
# $\pm 1/\sqrt{\text{fan-in}}$, whose RMS is $1/\sqrt{3\,\text{fan-in}}$. The cell below computes it for every
# layer of both networks, with $\lVert w\rVert$ and what the June rule's clamp makes of it.

# %%
import numpy as np

from lamb_edu import nn

for network in (nn.MLP([784, 256, 256, 10], seed=0), nn.CNN(seed=0)):
    print(type(network).__name__)
    for name, parameter in network.named_parameters():
        w = parameter.data
        rms, norm = float(np.sqrt((w ** 2).mean())), float(np.linalg.norm(w))
        print(f"   {name:16s} n = {w.size:6d}  RMS(w) = {rms:.4f}  ‖w‖ = {norm:6.2f}  "
              f"June rule's first r ≈ min(‖w‖, 10)/√n = {min(norm, 10) / np.sqrt(w.size):.4f}")

# %% [markdown]
# **The runs** have the settings of notebook 4 (seed 0): batch 512, lr 0.01, betas (0.9, 0.99), 5 epochs
# of MNIST, statistics logged every 5 steps, on the MLP in both modes (a CNN epoch costs 20 to 70
# CPU-seconds here; the committed CNN runs of `lamb-edu reproduce trust_ratio` are printed further down).
# Quick mode trains 8 epochs of 12 000 images, tested on 2 000.

# %%
NETWORK = "mlp"
comparison = experiments.trust_ratio_histograms(quick=QUICK, seed=0, network=NETWORK)
print(f"network: {comparison.network_name}; {comparison.train_size} training images; rule: {comparison.rule_title}")

# %%
figure = plots.plot_trust_per_layer(comparison)
print(f"{'':14s} {'parameter':16s} {'r first':>8s} {'r min':>8s} {'r last':>8s} {'r1 first':>9s} {'r1 last':>8s} "
      f"{'‖w‖ first':>9s} {'‖w‖ last':>9s}")
for label, runs in comparison.runs.items():
    run = runs[0]
    for index, name in enumerate(run.parameter_names):
        print(f"{label:14s} {name:16s} {run.trust_ratio[0, index]:8.4f} {run.trust_ratio[:, index].min():8.4f} "
              f"{run.trust_ratio[-1, index]:8.3f} {run.r1[0, index]:9.4f} {run.r1[-1, index]:8.4f} "
              f"{run.weight_norm[0, index]:9.2f} {run.weight_norm[-1, index]:9.2f}")
lamb, adam = comparison.runs["LAMB lr 0.01"][0], comparison.runs["Adam lr 0.01"][0]
print("every layer's first r below 1:", bool((lamb.trust_ratio[0] < 1).all() and (adam.trust_ratio[0] < 1).all()))
print("first r over RMS(w) at step 1, per layer (LAMB):", np.round(lamb.trust_ratio[0] / lamb.r1[0], 3))
larger = int((lamb.weight_norm[-1] > adam.weight_norm[-1]).sum())
print(f"LAMB's weight norm ends larger than Adam's in {larger} of {len(lamb.parameter_names)} parameters")

# %% [markdown]
# **What to look for.** Each line is one parameter tensor (solid: weights, dashed: biases). Every
# layer's $r$ starts far below 1 (the first verdict line), as the article says: with LAMB a natural
# warm-up. The next line divides the first $r$ by $r_1 = \mathrm{RMS}(w)$: about 1 for every layer,
# large or small, so the first $r$ is the initial RMS of the layer's weights (a little more where
# $\epsilon$ shrinks the entries of tiny gradients), not a function of its size. Later $r$ grows as the
# updates shrink (the gradients get smaller and noisier, so $m$ averages out) while the weights grow:
# LAMB lets a layer take larger steps as its weights grow, as the article describes. The last line
# checks the article's "this inflates the norms relative to the Adam baseline" on this run.
#
# The committed CNN runs (`lamb-edu reproduce trust_ratio`, seed 0), for each rule they were run with:

# %%
committed = experiments.committed_results()
for name in ("trust_ratio", "trust_ratio@june2019"):
    entry = committed.get(name)
    if not entry:
        continue
    print(f"{name}: {entry['network'].split(':')[0]}; {'; '.join(entry.get('rules', {}).values())}")
    for label, setting in entry["settings"].items():
        run = setting["runs"][0]
        print(f"   {label}: final test accuracy {100 * run['final_test_accuracy']:.2f} %")
        for layer, values in run["layers"].items():
            print(f"      {layer:12s} r first {values['trust_ratio_first']:8.4f}  r last {values['trust_ratio_last']:10.4g}  "
                  f"‖w‖ {values['weight_norm_first']:6.2f} → {values['weight_norm_last']:7.2f}")

# %% [markdown]
# **On the CNN.** The first $r$ follows the initial RMS of each layer, not its size: conv1 (fan-in 25)
# starts highest, conv2, fc1 and fc2 (fan-in 500 to 800) lowest, and under the June rule `fc1.weight`,
# whose $\lVert w\rVert$ starts above 10, lower still, by the clamp. Under the June rule the Adam baseline
# does not learn on the CNN at all (its final accuracy is chance, 11.35 %), its weight norms blow up in
# the first steps and the ReLUs die: its last $r$ is 1 for most layers, the value the rule gives when
# $\lVert u\rVert = 0$. Compare with the May rule's lines, where the "Adam" side is Adam.
#
# The article drew these numbers as TensorBoard histograms. The same data as ridge plots, labelled as
# the run's rule defines them:

# %%
figure = plots.plot_trust_ridges(comparison)

# %% [markdown]
# **How to read it.** Each row is one logged step, the first at the top, like the article's
# TensorBoard histograms; each ridge is the distribution over the parameter tensors (6 in the MLP, 8 in
# the CNN) of one statistic, on a logarithmic axis. With only 6 or 8 values per ridge, a bump is one or
# two layers and the smoothing draws bumps between them that are not layers: read the per-layer lines
# above, and use the ridges only for the overall drift. The dotted line in the left column marks $r = 1$.
#
# ## Which code did the article run?
#
# lamb-edu first reproduced the article with the rule of pytorch-lamb's *current* code, and found three
# "slips" in the article: it says the trust ratio is clipped at 10 (the current code clamps $\lVert w\rVert$),
# that the numerator is about 0 at the start (the current $\lVert w\rVert$ is 9 to 13 for the large layers),
# and its code seemed to have no bias correction. All three are true of the code *as the article ran it*.
# How to find that out, with nothing but the repository's history:
#
# ```bash
# git clone https://github.com/cybertronai/pytorch-lamb && cd pytorch-lamb
# git log --date=short --format='%h %ad %s' -- pytorch_lamb/lamb.py   # every version of the rule, with dates
# git show ff2245e:pytorch_lamb/lamb.py                              # the rule on 1 May 2019
# git show ff2245e:README.md                                          # the claims made with it
# git diff ff2245e 207f672 -- pytorch_lamb/lamb.py                    # what "update according to v3 of paper" changed
# ```
#
# The evidence that the article ran the May code: its histograms are labelled `r`, `r1` and `r2`,
# which only that code logs (`log_lamb_rs`; from 16 June on the state holds `weight_norm`, `adam_norm`,
# `trust_ratio`); its lr-0.1 runs with and without weight decay 0.01 at batch 512 are the sample runs of
# that code's README ("With a little weight decay, LAMB avoids diverging!"), while the June README
# replaced them with an lr-0.02 claim; and it describes that code's rules (the ratio clipped at 10, a
# small numerator). The two rules side by side:
#
# | | May 2019 (ff2245e), the article's | June 2019 (207f672) on |
# |---|---|---|
# | weight decay | L2: $g + \lambda w$ before the moments | decoupled: $u = a + \lambda w$ |
# | bias correction | folded into the step size $\eta\sqrt{1-\beta_2^t}/(1-\beta_1^t)$ | none (paper v3) |
# | $\epsilon$ | $10^{-8}$, on $\sqrt v$ | $10^{-6}$, on $\sqrt v$ |
# | $r_1$, $r_2$ | $\mathrm{RMS}(w)$, $\mathrm{RMS}(a)$ | $\lVert w\rVert$, $\lVert u\rVert$ |
# | clamp | the ratio: $r = \min(r_1/r_2, 10)$ | the weight norm: $r = \min(r_1, 10)/r_2$ |
# | `adam=True` | $r = 1$: Adam with L2 weight decay | $r = 1$: no bias correction, decoupled decay (not Adam) |
#
# The next cell runs one step of both on the same layer, to see RMS against norms and the two clamps.

# %%
rng = np.random.default_rng(0)
layer = rng.uniform(-1 / np.sqrt(784), 1 / np.sqrt(784), size=(256, 784)).astype(np.float32)
gradient = (0.01 * rng.normal(size=layer.shape)).astype(np.float32)
for name, make in (("May 2019 (LAMB2019)", lambda p: optim.LAMB2019(p, lr=0.01, betas=(0.9, 0.99))),
                   ("June 2019 (LAMB, no bias correction)",
                    lambda p: optim.LAMB(p, lr=0.01, betas=(0.9, 0.99), bias_correction=False))):
    parameter = Tensor(layer.copy(), requires_grad=True)
    optimizer = make([parameter])
    parameter.grad = gradient.copy()
    optimizer.step()
    state = optimizer.state[parameter]
    step = float(np.linalg.norm(parameter.data - layer))
    r1, r2 = (state["r1"], state["r2"]) if "r1" in state else (state["weight_norm"], state["ratio_denominator"])
    print(f"{name:38s} r1 = {r1:9.4f}  r2 = {r2:9.4f}  r = {state['trust_ratio']:.4f}  ‖Δw‖ = {step:.4f}")

# %% [markdown]
# **What to look for.** $r_1$ and $r_2$ differ by $\sqrt n = \sqrt{200\,704} \approx 448$ between the rules,
# while $r$ and the first step agree: no clamp acts on this layer ($\lVert w\rVert$ is below 10 and
# $r_1/r_2$ far below 10), and at $t = 1$ the May rule's step size $s_1 = \eta\sqrt{1-\beta_2}/(1-\beta_1)$ is
# exactly $\eta$ for betas (0.9, 0.99). The rules part later: through the bias correction (in the May
# rule's step size, absent from the June rule), the clamps (on $r$ against on $\lVert w\rVert$, which acts
# from the first step on a layer like the CNN's `fc1.weight`) and above all weight decay (L2 in the
# gradient against decoupled). What changed in the numbers when lamb-edu switched to the article's rule
# is in notebook 5 (both rules, the same runs, printed side by side) and in the README's claims table
# (a column per rule).
#
# ## One LAMB step by hand
#
# Two layers of two weights, numbers you can check with a calculator: layer 1 has $w = (0.6, -0.8)$,
# $\lVert w\rVert = 1$, and gradient $g = (0.3, 0.4)$; layer 2 has $w = (5, 12)$, $\lVert w\rVert = 13$ (above
# the clamp), and $g = (-0.5, 0.2)$. Step $t = 1$ of Algorithm 2 with $\eta = 0.1$, $\beta = (0.9, 0.999)$,
# $\epsilon = 10^{-6}$, $\lambda = 0.1$. Work out each line yourself first; then compare.

# %%
print(classroom.TOY_SETTINGS)
by_hand = classroom.lamb_step_by_hand(classroom.TOY_WEIGHTS, classroom.TOY_GRADIENTS, **classroom.TOY_SETTINGS)
print("\n".join(classroom.algorithm_lines(by_hand)))
new_weights, states = classroom.lamb_step_with_optimizer(classroom.TOY_WEIGHTS, classroom.TOY_GRADIENTS,
                                                         **classroom.TOY_SETTINGS)
for layer, weight, state in zip(by_hand, new_weights, states):
    np.testing.assert_allclose(weight, layer.new_w, rtol=1e-12)  # optim.LAMB.step takes the same step
    assert abs(state["trust_ratio"] - layer.trust_ratio) <= 1e-12 * layer.trust_ratio
print("optim.LAMB.step gives the same new weights and trust ratios:", [w.round(6).tolist() for w in new_weights])

# %% [markdown]
# **Read it.** At $t = 1$, $\hat m = g$ and $\hat v = g^2$, so the Adam part is $g/(\lvert g\rvert + \epsilon)$,
# $\pm 1$ up to $\epsilon$ (0.9999967 for $g = 0.3$). Layer 1: $u = (1.06, 0.92)$, $\lVert u\rVert = \sqrt{1.97} = 1.4036$,
# $r = 1/1.4036 = 0.7125$, and the step $\eta r u$ has norm $0.1 \cdot 1 = 0.1$. Layer 2: $u = (-0.5, 2.2)$,
# $\lVert u\rVert = 2.256$; the clamp gives $\phi(13) = 10$, so $r = 10/2.256 = 4.43$ and the step has norm
# $0.1 \cdot 10 = 1$, not $0.1 \cdot 13$.
#
# ## Try it: weight decay and the clamp
#
# LAMB on two layers of 50 weights (the vector form of notebook 02's problem; layer A's norm passes 10).
# Move the weight decay and the clamp value (0 means no clamp). Without a widget frontend you see weight
# decay 0 and clamp 10.

# %%
figure = classroom.trust_ratio_view(weight_decay=0.0, clamp_value=10.0)

# %%
classroom.sliders(classroom.trust_ratio_view, weight_decay=(0.0, 0.1, 0.001, 0.0), clamp_value=(0.0, 50.0, 1.0, 10.0))

# %% [markdown]
# **What to look for.** With the clamp, layer A's step (blue, right) flattens at $10\eta$ once its norm
# passes 10, and its trust ratio is correspondingly smaller; without it (clamp 0) the step follows
# $\eta\lVert w\rVert$ up to about $30\eta$. Weight decay adds $\lambda w$ to $u$: the layers settle short of
# their optimum (the distance panel stops falling), more so for large $\lambda$, because the optimum of
# the decayed problem is not $w^*$.
#
# ## Exercises
#
# 1. Check the formula for the first trust ratio: for each layer compute RMS$(w_0)$ from a fresh
#    `nn.MLP([784, 256, 256, 10], seed=0)` and compare with `run.trust_ratio[0]`. Why do the biases start
#    at the same ratio as their weights?
# 2. With betas (0.9, 0.999), what is $r_2$ at the first step under the May rule? Predict the first
#    trust ratio and the first step $\lVert\Delta w\rVert$, then check them with `optim.LAMB2019` on one layer.
# 3. Under the May rule $r$ is clamped at 10. Which layers reach the clamp during the LAMB run above, and
#    when? (Look for 10 in `run.trust_ratio`.) What would the June rule's clamp have done instead?
#
# ## Solutions
#
# <details><summary>1.</summary>
#
# `[np.sqrt((p.data ** 2).mean()) for p in model.parameters()]`: close to $1/\sqrt{3\cdot 784} = 0.0206$ for
# the first layer and $1/\sqrt{3\cdot 256} = 0.036$ for the others, against first ratios a few percent
# higher (the entries with $\lvert g\rvert \lesssim 10^{-5}$ have $\lvert a\rvert < 1$, the $\epsilon$ term). A
# bias of layer $\ell$ is initialised uniformly in the same $\pm 1/\sqrt{\text{fan-in}}$ as its weights, so
# its RMS, and its first ratio, is the same.
# </details>
#
# <details><summary>2.</summary>
#
# Each entry of $a$ is $\frac{1-\beta_1}{\sqrt{1-\beta_2}}\operatorname{sign}(g) = 0.1/\sqrt{0.001} \approx 3.16$,
# so $r_2 \approx 3.16$ and the first $r$ is about RMS$(w)/3.16$. The step size is
# $s_1 = \eta\sqrt{0.001}/0.1 = 0.316\,\eta$, so $\lVert\Delta w\rVert = s_1 r \lVert a\rVert = 0.316\,\eta\,\lVert w\rVert$:
# the bias correction in the step size gives back the factor 3.16 that $r$ took.
# </details>
#
# <details><summary>3.</summary>
#
# `np.argwhere(run.trust_ratio >= 10)` lists the logged steps and layers at the clamp (run it: whether any
# layer reaches it depends on the run). The June rule clamps $\lVert w\rVert$ at 10 instead, so it acts on the
# large layers from the start ($\lVert w\rVert \approx 9$ to 13) and never on the ratio itself, which can then be
# far above 10 (notebook 5 shows $r \approx 10^{16}$ when $\lVert u\rVert \to 0$).
# </details>
#
# ## Summary
#
# - The article's code logs $r_1 = \mathrm{RMS}(w)$, $r_2 = \mathrm{RMS}(a)$ and $r = \min(r_1/r_2, 10)$; the later
#   code logs norms and clamps $\lVert w\rVert$. The ratio is the same up to the clamps.
# - $r$ starts near the initial RMS of a layer's weights, $1/\sqrt{3\,\text{fan-in}}$, whatever its size:
#   LAMB's built-in warm-up.
# - Before reproducing a write-up, find the version of the code it ran (`git log`, `git show`): here the
#   version decides whether weight decay keeps LAMB stable at lr 0.1.
# - Checking one step by hand against `optim.LAMB` is the fastest way to be sure you read Algorithm 2 right.
