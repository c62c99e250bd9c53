# %% [markdown]
# # 2. From SGD to LAMB: six update rules on a problem with two "layers"
#
# A deep network's layers live on very different scales: one layer's weights may have a norm of 10,
# another's 0.1, and their gradients differ just as much. A single global learning rate cannot suit
# them all. This notebook builds up the article's path, SGD → momentum → Adam → AdamW → LARS → LAMB,
# on the smallest problem that shows why LAMB looks at each layer separately.
#
# **You will learn**
# - the update rule of each optimizer, written as equations and called from `lamb_edu.optim`;
# - why one step size for all layers fails when the layers differ in scale;
# - what Adam's per-coordinate normalisation fixes, and what it does not;
# - how LARS's and LAMB's **trust ratio** $\lVert w\rVert / \lVert u\rVert$ turns each layer's step into a
#   fixed fraction of that layer's own weight.

# %%
QUICK = False  # True: the small, fast settings; the committed outputs use the setting printed below

# %matplotlib inline
import numpy as np

from lamb_edu import classroom, experiments, plots

QUICK = experiments.quick_mode(default=QUICK)  # LAMB_EDU_QUICK=1 (as in CI) forces quick mode
print("mode:", "quick" if QUICK else "full")

# %% [markdown]
# ## The problem
#
# First a short illustration with one-weight layers, then the main experiment with layers of 50
# weights. Two parameters, each its own `Tensor` (so LARS and LAMB treat each as a layer): layer A with
# optimum $a^*=4$ and layer B with optimum $b^*=0.04$, a hundred times smaller:
#
# $$L(a, b) = \tfrac12\Big(\frac{a-4}{4}\Big)^2 + \tfrac12\Big(\frac{b-0.04}{0.04}\Big)^2 .$$
#
# Measured in each layer's own units ($a/a^*$, $b/b^*$) the loss is perfectly round. But the raw
# gradients are $\partial L/\partial a = (a-4)/16$ and $\partial L/\partial b = (b-0.04)/0.0016$: the
# curvature of B is $100^2 = 10\,000$ times that of A. Everyone starts from $a=1$, $b=0.01$ (a quarter
# of each optimum) and takes full-gradient steps with a learning rate that decays linearly to 0, as
# in the LAMB paper.
#
# ## The update rules
#
# With gradient $g_t$ of a layer $w$ (here a single number; in a network, a whole weight matrix):
#
# | optimizer | update |
# |---|---|
# | SGD | $w \leftarrow w - \eta\, g_t$ |
# | momentum | $b_t = \mu b_{t-1} + g_t,\quad w \leftarrow w - \eta\, b_t$ |
# | Adam | $m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\; v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\; w \leftarrow w - \eta\, \dfrac{\hat m_t}{\sqrt{\hat v_t}+\epsilon}$ |
# | AdamW | Adam, plus decoupled weight decay: $w \leftarrow w - \eta\big(\frac{\hat m_t}{\sqrt{\hat v_t}+\epsilon} + \lambda w\big)$ |
# | LARS | local lr $\; \eta_\ell = \gamma \dfrac{\lVert w\rVert}{\lVert g_t\rVert + \lambda\lVert w\rVert},\quad b_t = \mu b_{t-1} + \eta\,\eta_\ell\,(g_t + \lambda w),\quad w \leftarrow w - b_t$ |
# | LAMB | $u_t = \dfrac{\hat m_t}{\sqrt{\hat v_t}+\epsilon} + \lambda w,\quad r_t = \dfrac{\phi(\lVert w\rVert)}{\lVert u_t\rVert},\quad w \leftarrow w - \eta\, r_t\, u_t$ |
#
# ($\hat m_t$, $\hat v_t$ are the bias-corrected moments of notebook 1; $\gamma$ is LARS's trust
# coefficient; $\phi(\lVert w\rVert) = \min(\lVert w\rVert, 10)$ clamps the weight norm at 10.) The key
# line is LAMB's: since $\lVert r_t u_t\rVert = \phi(\lVert w\rVert)$, **every layer moves by
# $\eta\,\min(\lVert w\rVert, 10)$**, whatever the size of its gradient: $\eta$ times its own weight norm
# for a layer of norm below 10 (both layers here), $10\eta$ for a larger one (the hidden layers of the
# MNIST network, notebook 03). LARS does the same with SGD's direction (up to momentum), without the clamp.
#
# The settings (each optimizer's learning rate is on its own scale; SGD's is close to the largest
# that layer B tolerates, $2/(\partial^2 L/\partial b^2) = 2\cdot 0.04^2 = 0.0032$):

# %%
for name, (class_name, settings) in experiments.TWO_LAYER_OPTIMIZERS.items():
    print(f"{name:26s} optim.{class_name}({', '.join(f'{k}={v}' for k, v in settings.items())})")

# %%
result = experiments.from_sgd_to_lamb(quick=QUICK)
figure = plots.plot_two_layer_trajectories(result)

# %% [markdown]
# **What to look for.** Axes are in each layer's own units, so the optimum is the star at (1, 1) and
# the contours are circles.
# - **SGD**: layer B converges at once, but its curvature
#   forces a learning rate so small that layer A has hardly moved after all the steps: the path is
#   a vertical line.
# - **Momentum** speeds layer A up a little, and makes layer B ring.
# - **Adam** normalises each coordinate's gradient, so both layers move, but by about the same
#   *absolute* amount $\eta$ per step: a big jump for small layer B (it overshoots to 1.7× its
#   optimum on the first steps) and a small one for large layer A.
# - **AdamW** is Adam with weight decay; on this problem the decay only pulls the weights a little
#   towards 0.
# - **LARS** and **LAMB** move each layer by the same *fraction* of its weight, so in these units
#   they go straight along the diagonal to the optimum.

# %%
figure = plots.plot_two_layer_convergence(result)
for name in plots.TRAJECTORY_PANELS:
    reached = result.steps_to_reach(name)
    print(f"{name:9s} within 10 % of the optimum in both layers from step: {reached if reached is not None else 'never'}")

# %% [markdown]
# ## What the trust ratio does to each layer's step
#
# The left panel shows the trust ratio $r = \lVert w\rVert/\lVert u\rVert$ that LAMB computes for
# each layer, and the one that "LAMB without trust ratio" (the Adam baseline of the article's code:
# it computes $r$ but steps with 1) would have used. The right panel shows the step each layer
# actually took, as a fraction of its weight: $|\Delta w|/|w|$.

# %%
figure = plots.plot_two_layer_trust_ratio(result)
print("first step, |Δw|/|w| per layer (A, B):")
for name in ("LAMB without trust ratio", "LAMB"):
    print(f"  {name:26s}", result.relative_step(name)[0].round(4))

# %% [markdown]
# **A caveat about this toy.** Each "layer" here is a single number, so $u/\lVert u\rVert = \pm 1$: LAMB on
# one-weight layers is *sign descent* with step $\eta\lvert w\rvert$. It cannot slow down as it nears the
# optimum except through the decaying learning rate: it rings around the optimum and settles only as
# the lr goes to 0. The "within 10 %" count above says nothing about how far each layer ends from its
# optimum; here are the final distances:

# %%
for name in plots.TRAJECTORY_PANELS:
    error = result.relative_error(name)[-1]
    print(f"{name:9s} final distance to the optimum: layer A {100 * error[0]:7.3f} %, layer B {100 * error[1]:7.3f} %")

# %% [markdown]
# So the picture above is an illustration of the step sizes, not a fair race. The real comparison
# needs real layers.
#
# ## The main experiment: two layers of 50 weights
#
# In a network a layer has thousands of weights, and the direction $u/\lVert u\rVert$ carries
# information: coordinates with small gradients move less. `experiments.vector_layers_problem` makes two
# layers of 50 weights each, the same two scales (entries around 4 and around 0.04), with curvatures
# spread over 100× inside each layer: the loss of a layer is $\tfrac12\sum_i c_i\,((w_i-w^*_i)/w^*_i)^2$
# with $c_i$ from 0.1 to 10. Every optimizer starts at a quarter of the optimum and takes full-gradient
# steps with its lr decaying linearly to 0 (`experiments.vector_layers_comparison`). SGD's lr is now
# bounded by the steepest coordinate of layer B: $2\cdot 0.02^2/10 = 8\cdot10^{-5}$. The measure is the
# distance of each layer to its optimum in its own units, $\lVert w-w^*\rVert/\lVert w^*\rVert$ (0.75 at the start).

# %%
vector_runs = experiments.vector_layers_comparison(quick=QUICK)
figure = plots.plot_vector_layers_comparison(vector_runs)
for name, run in vector_runs.items():
    error = run["relative_error"]
    inside = (error < 0.1).all(axis=1)
    stays = int(np.flatnonzero(~inside)[-1] + 1) if inside[-1] else None
    print(f"{name:26s} final ‖w − w*‖/‖w*‖: layer A {100 * error[-1, 0]:7.3f} %, layer B {100 * error[-1, 1]:7.3f} %;"
          f" within 10 % in both layers from step {stays if stays is not None else 'never'}")
within_1 = [name for name, run in vector_runs.items() if (run["relative_error"][-1] < 0.01).all()]
print("within 1 % of the optimum in both layers at the end:", ", ".join(within_1) or "none")

# %% [markdown]
# **What to look for** (the numbers are printed above).
# - **SGD** cannot move layer A at all (it stays at 75 %, its start) and does not finish layer B
#   either: the lr that keeps B's steepest coordinate stable is far too small for its flattest ones.
# - **Adam** (and "LAMB without trust ratio", which is Adam here: same moments, bias correction, no
#   weight decay, so the two curves lie on top of each other) takes steps of about $\eta$ per
#   coordinate in absolute units. That is large for layer B, which ends closest of all, and small
#   for layer A, which is still several percent away when the lr reaches 0 (tens of percent in quick
#   mode's 120 steps): Adam never enters the 10 % band in both layers within the quick run.
# - **LARS** and **LAMB** move each layer by the same *fraction* of its norm, so both layers close in
#   on their optimum together. The last printed line names the rules that end within 1 % in both
#   layers: in full mode (200 steps) LAMB is not alone there, and LARS (with its notebook settings) ends
#   closer still; in quick mode's 120 steps LARS is still settling. Neither is the best on every layer:
#   on small layer B, Adam ends closer than LAMB. The trust ratio evens the layers out; it does not make
#   each one faster.
#
# Below, LAMB's own bookkeeping on this problem: its step norm sits exactly on $\eta\,\phi(\lVert w\rVert)$, for
# layer B $\eta\lVert w\rVert$, for layer A $10\eta$ once its norm (about 30 at the optimum) passes the clamp.

# %%
vector_run = experiments.lamb_on_vector_layers(steps=200 if not QUICK else 120)
figure = plots.plot_vector_layers(vector_run)
print("final distance ‖w − w*‖/‖w*‖ per layer:", vector_run["relative_error"][-1].round(5))

# %% [markdown]
# ## Try it: the optimizer and its learning rate
#
# Pick an optimizer and move its learning rate (each optimizer's lr is on its own scale; the
# default is the one above). Without a widget frontend you see LAMB at lr 0.05.

# %%
figure = classroom.trajectory_view("LAMB", lr=0.05)

# %%
classroom.sliders(classroom.trajectory_view, optimizer=(list(classroom.TRAJECTORY_CHOICES), "LAMB"),
                  lr=(0.0, 0.2, 0.001, 0.05))

# %% [markdown]
# **What to look for.** At the first step Adam's direction has norm about 1 in each layer, so LAMB's
# trust ratio is about the weight itself: 1 for layer A and 0.01 for layer B. That is LAMB's
# "natural warm-up" for small layers. On the right, LAMB's relative step is exactly the learning
# rate in both layers (the two red lines coincide, falling as the lr decays), whereas Adam's
# relative step for layer B starts 100× larger than for layer A. Near the optimum $\lVert u\rVert$
# shrinks (the gradients change sign and $m$ averages them away) and the trust ratio grows large:
# LAMB still moves by $\eta\lVert w\rVert$ per step, which is why it needs a decaying learning rate to
# settle.
#
# ## Write the rules yourself
#
# Complete the four step functions below, each in a few lines of NumPy, following the table of update
# rules. Each takes the weights `w`, the gradient `g` and a dict `state` it may keep buffers in (empty at
# the first step), and returns the new weights. The cell after them runs each for five steps beside the
# library's optimizer on the same gradients and says whether they agree (to 1e-9). Until you write a
# function it returns `None` and the check says so. The solutions are folded at the end of the notebook.

# %%
def sgd_step(w, g, state, lr=0.1):
    """w ← w − lr·g."""
    return None  # your code here


def momentum_step(w, g, state, lr=0.1, momentum=0.9):
    """b ← g at the first step, then b ← momentum·b + g; w ← w − lr·b."""
    return None  # your code here


def adam_step(w, g, state, lr=0.01, betas=(0.9, 0.999), eps=1e-8):
    """m, v as in the table; m̂ = m/(1 − β1ᵗ), v̂ = v/(1 − β2ᵗ); w ← w − lr·m̂/(√v̂ + eps)."""
    return None  # your code here


def lamb_step(w, g, state, lr=0.01, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01):
    """u = m̂/(√v̂ + eps) + λw; r = min(‖w‖, 10)/‖u‖ (1 if either norm is 0); w ← w − lr·r·u."""
    return None  # your code here


# %%
from lamb_edu import Tensor, optim


def check(step, optimizer_class, **settings):
    """Five steps of ``step`` beside ``optimizer_class`` (with the same settings) on the same random gradients."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3))
    parameter = Tensor(w.copy(), requires_grad=True)
    optimizer = optimizer_class([parameter], **settings)
    state = {}
    for _ in range(5):
        g = rng.normal(size=w.shape)
        w = step(w, g, state, **settings)
        if w is None:
            return "not written yet"
        parameter.grad = g.copy()
        optimizer.step()
    difference = float(np.abs(w - parameter.data).max())
    return f"{'agrees' if difference < 1e-9 else 'DIFFERS'} (largest difference {difference:.1e})"


print("SGD:     ", check(sgd_step, optim.SGD, lr=0.1))
print("momentum:", check(momentum_step, optim.SGD, lr=0.1, momentum=0.9))
print("Adam:    ", check(adam_step, optim.Adam, lr=0.01, betas=(0.9, 0.999), eps=1e-8))
print("LAMB:    ", check(lamb_step, optim.LAMB, lr=0.01, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01))

# %% [markdown]
# ## Exercises
#
# 1. Run the experiment without the learning-rate decay (edit a copy of `from_sgd_to_lamb`, or
#    step `optim.LAMB` yourself on `experiments.two_layer_loss`). How close does LAMB get to the
#    optimum, and why can it not do better than about $\eta$ relative error?
# 2. Make layer B's optimum 0.4 instead of 0.04 (edit `experiments.LAYER_OPTIMA` and
#    `LAYER_STARTS`). Which optimizers' paths change, and which do not? Explain with the update rules.
# 3. LARS divides by $\lVert g\rVert$, LAMB by $\lVert u\rVert$ with $u$ Adam's direction. For a layer
#    with a single weight, what is $\lVert u\rVert$ at the first step? What would change for a layer
#    of 1000 weights whose gradients all have the same sign?
#
# ## Solutions
#
# <details><summary>1.</summary>
#
# With a constant lr LAMB moves each layer by $\eta\lvert w\rvert$ at every step, so near the optimum it
# jumps back and forth across it: it stays about $\eta$ away in relative terms (5 % at lr 0.05). Only a
# step that shrinks, a decaying lr, lets it settle.
# </details>
#
# <details><summary>2.</summary>
#
# SGD and momentum change most: layer B's curvature falls 100-fold, so the lr can grow, and layer A
# moves. Adam's paths change too (B now needs ten times more absolute movement). LARS and LAMB barely
# change: they step a fraction of each layer's own norm, so the scale of a layer does not matter.
# </details>
#
# <details><summary>3.</summary>
#
# One weight: $u = \hat m_1/(\sqrt{\hat v_1}+\epsilon) = g/(\lvert g\rvert+\epsilon) \approx \pm1$, so
# $\lVert u\rVert \approx 1$. 1000 weights with same-sign gradients: every entry is $\approx\pm 1$, so
# $\lVert u\rVert \approx \sqrt{1000} \approx 31.6$, and $r = \lVert w\rVert/31.6$: the RMS of the weights.
# </details>
#
# <details><summary>The four step functions.</summary>
#
# ```python
# def sgd_step(w, g, state, lr=0.1):
#     return w - lr * g
#
#
# def momentum_step(w, g, state, lr=0.1, momentum=0.9):
#     state["b"] = g.copy() if "b" not in state else momentum * state["b"] + g
#     return w - lr * state["b"]
#
#
# def adam_step(w, g, state, lr=0.01, betas=(0.9, 0.999), eps=1e-8):
#     (beta1, beta2), t = betas, state.get("t", 0) + 1
#     state["t"] = t
#     state["m"] = beta1 * state.get("m", 0) + (1 - beta1) * g
#     state["v"] = beta2 * state.get("v", 0) + (1 - beta2) * g * g
#     m_hat, v_hat = state["m"] / (1 - beta1**t), state["v"] / (1 - beta2**t)
#     return w - lr * m_hat / (np.sqrt(v_hat) + eps)
#
#
# def lamb_step(w, g, state, lr=0.01, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01):
#     (beta1, beta2), t = betas, state.get("t", 0) + 1
#     state["t"] = t
#     state["m"] = beta1 * state.get("m", 0) + (1 - beta1) * g
#     state["v"] = beta2 * state.get("v", 0) + (1 - beta2) * g * g
#     u = (state["m"] / (1 - beta1**t)) / (np.sqrt(state["v"] / (1 - beta2**t)) + eps) + weight_decay * w
#     w_norm, u_norm = np.linalg.norm(w), np.linalg.norm(u)
#     r = 1.0 if w_norm == 0 or u_norm == 0 else min(w_norm, 10.0) / u_norm
#     return w - lr * r * u
# ```
#
# `optim.Adam` computes $\sqrt{\hat v}$ as $\sqrt v/\sqrt{1-\beta_2^t}$, which differs from
# `np.sqrt(v_hat)` only in the last bits, far below 1e-9.
# </details>
#
# ## Summary
#
# - One global step size cannot suit layers of different scales; Adam's per-coordinate step is the
#   same in absolute terms in every layer.
# - LARS and LAMB move each layer by $\eta\,\min(\lVert w\rVert, 10)$ (LAMB) or $\eta\gamma\lVert w\rVert$
#   (LARS): a fraction of its own size.
# - On one-weight layers LAMB is sign descent; on real layers its direction is Adam's, normalised. On
#   the 50-weight layers the layer-wise rules (LARS and LAMB) bring both layers within 1 % of their
#   optimum in 200 steps, the others do not (the printed list).
