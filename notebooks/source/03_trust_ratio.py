# %% [markdown]
# # 3. The trust ratio during training
#
# LAMB multiplies each layer's Adam step by a **trust ratio** $r = r_1 / r_2$, the layer's weight norm
# over the norm of its update. The article logs $r$, $r_1$ and $r_2$ of every layer during MNIST
# training, for LAMB and for an Adam baseline that computes the ratio without using it, and draws them
# as TensorBoard histograms. This notebook does the same with ridge plots.
#
# **You will learn**
# - what $r_1$, $r_2$ and $r$ are for each layer, and how to read them off an optimizer's state;
# - why $r$ starts far below 1 (LAMB's built-in warm-up) and what sets its first value;
# - how $r$ and the weight norms evolve for LAMB and for Adam, and where our run differs from the
#   article's.

# %%
QUICK = False  # True: the small, fast settings; the committed outputs use the setting printed below

# %matplotlib inline
from lamb_edu import classroom, experiments, plots

QUICK = experiments.quick_mode(default=QUICK)  # LAMB_EDU_QUICK=1 (as in CI) forces quick mode
print("mode:", "quick" if QUICK else "full")

# %% [markdown]
# ## The three numbers of each layer
#
# For a parameter tensor $w$ (a weight matrix or a bias vector) with Adam update
# $u = \frac{m}{\sqrt{v}+\epsilon} + \lambda w$ (no bias correction, as in the article's code):
#
# $$r_1 = \lVert w\rVert, \qquad r_2 = \lVert u\rVert, \qquad
#   r = \frac{\phi(r_1)}{r_2} = \frac{\min(r_1, 10)}{r_2}, \qquad w \leftarrow w - \eta\, r\, u .$$
#
# Here $r_1$ is the weight norm itself, not clipped, in the text, the tables and the figures; the clamp
# $\phi$ acts only inside $r$. So LAMB moves each layer by exactly $\eta\,\min(r_1, 10)$: a fixed
# fraction of the layer's norm while that norm is below 10, and $10\eta$ once it is above. After every
# step `optim.LAMB` keeps the three numbers in `optimizer.state[p]` as `weight_norm` ($r_1$),
# `ratio_denominator` ($r_2$: the norm the ratio divides by, for LAMB its ‖u‖) and `trust_ratio` ($r$),
# also with `use_trust_ratio=False`, when it steps with 1 instead, and `train.fit` logs them every few steps.
#
# **Why $r$ starts below 1.** At the first step $m_1 = (1-\beta_1)g$ and $v_1 = (1-\beta_2)g^2$, so every
# entry of $u$ is
# $\frac{(1-\beta_1)g}{\sqrt{1-\beta_2}\,\lvert g\rvert+\epsilon} = \frac{\operatorname{sign}(g)}{1 + \epsilon/(0.1\lvert g\rvert)}$
# for $\beta = (0.9, 0.99)$: $\pm 1$ where $\lvert g\rvert \gg \epsilon/\sqrt{1-\beta_2} = 10^{-5}$, less where
# the gradient is tiny ($\epsilon$ acts as $\epsilon/\sqrt{1-\beta_2}$ on $\lvert g\rvert$). A layer of $n$
# entries then has $r_2 \lesssim \sqrt n$ and $r \approx \lVert w\rVert/\sqrt n$, the root-mean-square size of
# one weight (a little more, by the entries with tiny gradients). PyTorch-style initialisation draws
# weights uniformly in $\pm 1/\sqrt{\text{fan-in}}$, whose RMS is $1/\sqrt{3\,\text{fan-in}}$: 0.0206 for the
# first layer (fan-in 784), 0.036 for fan-in 256. So $r$ starts around 0.02 to 0.04, and LAMB's first
# steps are 25 to 50 times smaller than Adam's. The cell below checks this on the first layer.

# %%
import numpy as np

from lamb_edu import nn

model = nn.MLP([784, 256, 256, 10], seed=0)
first = model.layers[0].weight.data
print(f"first layer: uniform in ±1/√784 = ±{1 / np.sqrt(784):.4f}; RMS measured {np.sqrt((first ** 2).mean()):.4f}, "
      f"1/√(3·784) = {1 / np.sqrt(3 * 784):.4f}; ‖w‖ = {np.linalg.norm(first):.2f} (already near the clamp 10)")

# %% [markdown]
# **The runs** have the settings of notebook 4 (seed 0): batch 512, lr 0.01, betas (0.9, 0.99), 5 epochs
# of MNIST, statistics logged every 5 steps. In full mode they train the article's own network, the
# CNN (`nn.CNN`: conv1, conv2, fc1, fc2, as the article labels its layers); quick mode trains the MLP
# of notebook 4, 8 epochs of 12 000 images, tested on 2 000. The network is printed below, read from
# the result, and every figure's title names it.

# %%
comparison = experiments.trust_ratio_histograms(quick=QUICK, seed=0)
network = comparison.summary()["network"]
print(f"network: {network}; {comparison.train_size} training images")

# %%
figure = plots.plot_trust_per_layer(comparison)
print(f"{'':14s} {'parameter':16s} {'r first':>8s} {'r min':>8s} {'r last':>8s} {'r1 first':>9s} {'r1 last':>8s} {'r1 > 10 from step':>18s}")
for label, runs in comparison.runs.items():
    run = runs[0]
    for index, name in enumerate(run.parameter_names):
        norms = run.weight_norm[:, index]
        above = np.flatnonzero(norms > 10)
        print(f"{label:14s} {name:16s} {run.trust_ratio[0, index]:8.3f} {run.trust_ratio[:, index].min():8.3f} "
              f"{run.trust_ratio[-1, index]:8.3f} {norms[0]:9.3f} {norms[-1]:8.3f} "
              f"{int(run.log_steps[above[0]]) if above.size else 'never':>18}")

# %% [markdown]
# **What to look for.** Each line is one parameter tensor (solid: weights, dashed: biases). The numbers
# in this text are from the MLP (quick mode); the paragraph after the next gives the CNN's (full mode).
# In both runs every layer's $r$ starts between 0.02 and 0.04 (the "r first" column), far below 1, as
# the article says: with LAMB a natural warm-up. It then *dips* for a few dozen steps (the "r min"
# column) before it rises: without bias correction $\lVert u\rVert$ grows by $(1-\beta_1^t)/\sqrt{1-\beta_2^t}$, up to about
# 2.1 near step 13 for these betas (notebook 01). Later $r$ grows as the updates shrink (the gradients get
# smaller and noisier, so $m$ averages out) while the weights grow.
#
# The two hidden weight matrices start at $r_1 \approx 9.2$ and pass the clamp 10 early (the last column):
# from then on LAMB moves them by $10\eta = 0.1$ per step, not $\eta r_1$. The layer whose weights grow the
# most relative to their start, the output weight `layers.4.weight`, is the one whose trust ratio climbs
# highest: LAMB lets a layer take larger steps as its weights grow, as the article describes ("as some
# layers get larger weights and steadier gradients, $r$ lets them take bigger steps").
#
# **On the CNN (full mode)** the table reads differently (`figures/results.json` → `trust_ratio`). The
# first $r$ runs from 0.018 (`fc1.weight`, 400 000 weights) to 0.13 (`conv1`, 500 weights and 20
# biases): the fewer the weights, the smaller $\lVert u\rVert \approx \sqrt n$ and the larger $r$.
# `fc1.weight` starts at $r_1 = 12.9$, above the clamp from the first step. And the Adam baseline (lr 0.01, no bias correction)
# does not learn at all: 11.35 % test accuracy, the loss stays at chance (2.30), while `fc1.weight` grows
# from 12.9 to 60.9 and `conv2.weight` from 4.1 to 17.4. Its last $r$ is 1 for most layers, the value
# LAMB's rule gives when $\lVert u\rVert = 0$, or about $10^{16}$ when $\lVert u\rVert$ is a rounding
# error: the updates of every layer but the output biases vanished, as when all the ReLUs of a layer
# have gone dead. LAMB, same lr, reaches 98.97 %, its $r$ ending between 0.09 (`fc1.weight`) and 2.2
# (`conv1.bias`).
#
# The article drew these numbers as TensorBoard histograms. The same data as ridge plots:

# %%
figure = plots.plot_trust_ridges(comparison)

# %% [markdown]
# **How to read it.** Each row is one logged step, the first at the top, like the article's
# TensorBoard histograms; each ridge is the distribution over the parameter tensors (6 in the MLP, 8 in
# the CNN) of one statistic, on a logarithmic axis. With only 6 or 8 values per ridge, a bump is one or
# two layers and the smoothing draws bumps between them that are not layers: read the per-layer lines
# above, and use the ridges only for the overall drift. The dotted line in the left column marks $r = 1$.
#
# **Where our run differs from the article.** The article reports that LAMB's weight norms end up
# *larger* than the Adam baseline's. In our full runs on the MLP 784-256-256-10 (and in quick mode) it is
# the other way round: the Adam baseline's first layer grows from ‖w‖ = 9.2 to about 57, LAMB's only to
# about 14 (the table above gives the numbers of the run in this notebook, from the network printed
# above). On the CNN too: `fc1.weight` grows from 12.9 to 60.9 under the Adam baseline, to 17.3 under
# LAMB. The reason is in the update rules: Adam moves every one of the $n$ weights of the first layer by up to $\eta$ per step, a
# step of norm up to $\eta\sqrt n$ ($\approx 4.5$ for the MLP's 200 704, half the layer's norm), while LAMB
# moves the layer by $\eta\,\min(\lVert w\rVert, 10) \le 0.1$. The article's network (a CNN whose layers have
# 500 to 400 000 weights, batch size not stated) may balance the two differently; we report what our
# run shows rather than tune it until it matches.
#
# ## Box: the article's own slips
#
# The article is a good introduction, but three of its statements do not match the LAMB paper:
# - *"the trust ratio is clipped at 10"*: in the paper and in the article's code it is the weight norm
#   $\lVert w\rVert$ that is clamped, $r = \min(\lVert w\rVert, 10)/\lVert u\rVert$; the ratio itself can be
#   far above 10 (notebook 05 shows $r \approx 10^{16}$ when $\lVert u\rVert \to 0$).
# - *"the numerator is about 0 at the start, so r is small"*: the numerator $\lVert w\rVert$ is not 0 at
#   the start (9.2 for the first layer here); $r$ is small because the *denominator* $\lVert u\rVert$ is
#   large, about $\sqrt n$ (see "Why $r$ starts below 1" above).
# - *its code has no bias correction, while the paper's final Algorithm 2 has it.* The two forms are
#   $u = m/(\sqrt v+\epsilon) + \lambda w$ (the article's code, the paper's early versions) and
#   $u = \hat m/(\sqrt{\hat v}+\epsilon) + \lambda w$ (Algorithm 2). In LAMB they differ little, because the
#   trust ratio divides out the common factor; in the Adam baseline they differ a lot (notebook 01).
#   Notebooks 03 to 05 use the article's form, to reproduce its experiments; notebook 02, the step by
#   hand below and notebook 08 use Algorithm 2 (`optim.LAMB`'s default).
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
# 1. Check the formula for the first trust ratio: for each layer compute
#    $\lVert w_0\rVert/\sqrt n$ from a fresh `nn.MLP([784, 256, 256, 10], seed=0)` and compare with
#    `run.trust_ratio[0]`. Why do the two biases of size 256 start at the same ratio as their weights?
# 2. With betas (0.9, 0.999), what is $r_2$ at the first step? Predict the first trust ratio, then check
#    it with `experiments.train_mnist` and `MnistSetting(..., betas=(0.9, 0.999))`.
# 3. The clamp $\phi$ caps $r_1$ at 10. Which layer of this network is affected by it during the Adam
#    baseline run, and when? (Look at `run.weight_norm`.) Would it matter for LAMB?
#
# ## Solutions
#
# <details><summary>1.</summary>
#
# `[np.linalg.norm(p.data) / np.sqrt(p.data.size) for p in model.parameters()]` gives 0.0206, 0.0212,
# 0.0361, 0.0365, 0.0360, 0.0385, against logged first ratios a few percent higher (0.0218 for the
# first layer): the entries with $\lvert g\rvert \lesssim 10^{-5}$ have $\lvert u\rvert < 1$ (the $\epsilon$ term).
# A bias of layer $\ell$ is initialised uniformly in the same $\pm 1/\sqrt{\text{fan-in}}$ as its weights,
# so its RMS, and its first ratio, is the same.
# </details>
#
# <details><summary>2.</summary>
#
# Each entry of $u$ is $\frac{1-\beta_1}{\sqrt{1-\beta_2}}\operatorname{sign}(g) = 0.1/\sqrt{0.001} \approx 3.16$
# (no bias correction), so $r_2 \approx 3.16\sqrt n$ and the first $r$ is about 3.16 times smaller:
# about 0.0069 for the first layer.
# </details>
#
# <details><summary>3.</summary>
#
# The two hidden weight matrices start at 9.2 and 9.25, so both pass 10 within the first few dozen
# steps, in both runs (the table's last column). For LAMB it matters: from then on its step is $10\eta$
# instead of $\eta\lVert w\rVert$, a slightly smaller relative step as the norm grows. For the Adam
# baseline it only changes the recorded $r$, which it does not use.
# </details>
#
# ## Summary
#
# - $r = \min(r_1, 10)/r_2$ with $r_1 = \lVert w\rVert$ and $r_2 = \lVert u\rVert$; LAMB moves each layer by
#   $\eta\min(r_1, 10)$, and the MNIST hidden layers pass the clamp early.
# - $r$ starts near the RMS of a layer's weights ($1/\sqrt{3\,\text{fan-in}}$ at initialisation, a little
#   more because of $\epsilon$): LAMB's built-in warm-up.
# - Checking one step by hand against `optim.LAMB` is the fastest way to be sure you read Algorithm 2 right.
