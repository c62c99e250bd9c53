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
from lamb_edu import experiments, plots

QUICK = experiments.quick_mode(default=QUICK)  # LAMB_EDU_QUICK=1 (as in CI) forces quick mode
print("mode:", "quick" if QUICK else "full")

# %% [markdown]
# ## The three numbers of each layer
#
# For a parameter tensor $w$ (a weight matrix or a bias vector) with Adam update
# $u = \frac{m}{\sqrt{v}+\epsilon} + \lambda w$ (no bias correction, as in the article's code):
#
# $$r_1 = \phi(\lVert w\rVert) = \min(\lVert w\rVert, 10), \qquad r_2 = \lVert u\rVert, \qquad
#   r = \frac{r_1}{r_2}, \qquad w \leftarrow w - \eta\, r\, u .$$
#
# So LAMB moves each layer by exactly $\eta\, r_1$: a fixed fraction of the layer's own norm. After
# every step `optim.LAMB` keeps the three numbers in `optimizer.state[p]` as `weight_norm`,
# `update_norm` and `trust_ratio` (also with `use_trust_ratio=False`, when it steps with 1 instead), and
# `train.fit` logs them every few steps.
#
# **Why $r$ starts below 1.** At the first step $m_1 = (1-\beta_1)g$ and $v_1 = (1-\beta_2)g^2$, so every
# entry of $u$ is $\frac{1-\beta_1}{\sqrt{1-\beta_2}}\operatorname{sign}(g) = \operatorname{sign}(g)$
# for $\beta = (0.9, 0.99)$. A layer of $n$ entries then has $r_2 = \sqrt n$ and
# $r = \lVert w\rVert/\sqrt n$: the root-mean-square size of one weight. PyTorch-style initialisation
# draws weights of size about $1/\sqrt{\text{fan-in}}$, so $r$ starts around 0.02 to 0.04: LAMB's first
# steps are 25 to 50 times smaller than Adam's.
#
# **The runs** are those of notebook 4 (seed 0): the MLP 784-256-256-10 (6 parameter tensors: 3
# weights, 3 biases), batch 512, lr 0.01, betas (0.9, 0.99), 5 epochs of MNIST, statistics logged
# every 5 steps. Quick mode: 8 epochs of 12 000 images, tested on 2 000.

# %%
comparison = experiments.trust_ratio_histograms(quick=QUICK, seed=0)
figure = plots.plot_trust_ridges(comparison)

# %% [markdown]
# **How to read it.** Each row is one logged step, the first at the top, like the article's
# TensorBoard histograms; each ridge is the distribution over the 6 parameter tensors of one
# statistic, on a logarithmic axis (so one bump is one or two layers). The dotted line in the left
# column marks $r = 1$.
#
# **What to look for.** In both runs every layer's $r$ starts between 0.02 and 0.04, far below 1, as
# the article says. With LAMB this is a natural warm-up: the first steps are tiny. The ridges then move
# right: $r$ grows as the updates $u$ shrink (the gradients get smaller and noisier, so $m$ averages
# out) while the weights grow. The figure below follows each layer separately.

# %%
figure = plots.plot_trust_per_layer(comparison)
print(f"{'':14s} {'parameter':16s} {'r first':>8s} {'r last':>8s} {'|w| first':>10s} {'|w| last':>9s} {'|w| growth':>10s}")
for label, runs in comparison.runs.items():
    run = runs[0]
    for index, name in enumerate(run.parameter_names):
        first, last = run.weight_norm[0, index], run.weight_norm[-1, index]
        print(f"{label:14s} {name:16s} {run.trust_ratio[0, index]:8.3f} {run.trust_ratio[-1, index]:8.3f} "
              f"{first:10.3f} {last:9.3f} {last / first:9.2f}x")

# %% [markdown]
# **What to look for.** With LAMB, the layer whose weights grow the most relative to their start,
# the output layer's weight `layers.4.weight` (‖w‖ from 1.8 to about 6), is the one whose trust ratio
# climbs highest, to about 1: LAMB lets a layer take larger steps as its weights grow, as the article
# describes ("as some layers get larger weights and steadier gradients, $r$ lets them take bigger
# steps").
#
# **Where our run differs from the article.** The article reports that LAMB's weight norms end up
# *larger* than the Adam baseline's. In our run it is the other way round: the Adam baseline's first
# layer grows from ‖w‖ = 9.2 to about 57, LAMB's only to about 14. The reason is in the update
# rules: Adam moves every one of the 200 704 weights of the first layer by up to $\eta$ per step, a step
# of norm up to $\eta\sqrt n \approx 4.5$ (half the layer's norm), while LAMB moves the layer by
# $\eta\,\lVert w\rVert \approx 0.09$. Our network (an MLP with a 784 × 256 first layer) and our batch
# size (512) are not the article's (a CNN whose layers have 500 to 400 000 weights, batch size not
# stated), so the balance between the two can differ; we report what our run shows rather than tune
# it until it matches.
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
