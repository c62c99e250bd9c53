# %% [markdown]
# # 8. Spot the misquote
#
# Search for "LAMB optimizer" and you will find its formula written in several ways. Some are the
# paper's (You et al. 2019, Algorithm 2); some change one small piece and look just as reasonable.
# This notebook runs six such misquotes beside the paper's rule: two printed in the article this course
# follows, four thought experiments that no write-up we can cite prints. For each you first **predict**
# what it breaks, then **run** it, then **read** why.
#
# **You will learn**
# - the two scale properties that make LAMB (and LARS) layer-wise: the step does not change when the
#   loss is multiplied by a constant, and it grows with a layer's weights;
# - how to test an update rule for them in a few lines (the scale-invariance check);
# - what each misquote does on the badly scaled two-layer problem of notebook 02 and on MNIST, and
#   what its trust ratios per layer look like;
# - to read a formula in a tutorial with the questions "what are its units?" and "what happens when
#   a norm goes to 0?".
# %%
QUICK = False  # True: the small, fast settings; the committed outputs use the setting printed below

# %matplotlib inline
from lamb_edu import classroom, experiments, optim, plots
from lamb_edu.classroom import variants

QUICK = experiments.quick_mode(default=QUICK)  # LAMB_EDU_QUICK=1 (as in CI) forces quick mode
print("mode:", "quick" if QUICK else "full")

# %% [markdown]
# ## The paper's rule and six misquotes
#
# The paper's LAMB, per layer $w$ with gradient $g$ at step $t$:
#
# $$u = \frac{\hat m}{\sqrt{\hat v}+\epsilon} + \lambda w, \qquad r = \frac{\phi(\lVert w\rVert)}{\lVert u\rVert},
#   \qquad w \leftarrow w - \eta\, r\, u, \qquad \lVert \eta\, r\, u\rVert = \eta\,\phi(\lVert w\rVert).$$
#
# The misquotes (each is a class in `lamb_edu.classroom.variants`; `variants.SOURCES` says where each is
# printed, or that it is a thought experiment):
#
# | name | the formula | class | printed in |
# |---|---|---|---|
# | the article's denominator | $r = \phi(\lVert w\rVert)/\lVert g + \lambda w\rVert$ | `LAMBGradientInRatio` | the article, section "LAMB", change 2: "in LAMB [the denominator] is $\lvert\nabla L + \beta w\rvert$" |
# | LARS's local lr on Adam | $r = \phi(\lVert w\rVert)/(\lVert g\rVert + \lambda\lVert w\rVert)$ times Adam's step | `LAMBLarsLocalLr` | the article, end of "LAMB": "LARS applied to Adam, since it just multiplies the old update step by the trust ratio" |
# | first moment in the ratio | $r = \phi(\lVert w\rVert)/\lVert \hat m\rVert$ | `LAMBFirstMomentRatio` | thought experiment |
# | no $\lambda w$ in the ratio | $r = \phi(\lVert w\rVert)/(\lVert \hat m/(\sqrt{\hat v}+\epsilon)\rVert + \epsilon)$ | `LAMBNoDecayInRatio` | thought experiment |
# | ratio on the gradient | Adam on $\tilde g = (\phi(\lVert w\rVert)/\lVert g\rVert)\, g$ | `LAMBRatioOnGradient` | thought experiment |
# | LARS without $\lVert w\rVert$ | local lr $= \gamma/(\lVert g\rVert + \lambda\lVert w\rVert)$ | `LARSNoWeightNorm` | thought experiment |
#
# Not a misquote: LAMB *without bias correction*, $u = m/(\sqrt v+\epsilon) + \lambda w$, is the rule of the
# paper's v3 (and of pytorch-lamb from June 2019), and the trust ratio divides the bias factor out.
# Nor is "the ratio clipped at 10": that is the rule of the May 2019 code the article ran (notebook 03).
#
# **Predict.** Before running anything, write down for each rule (no weight decay):
# 1. if the loss is multiplied by 10 (every $g$ × 10), does the step stay the same?
# 2. if a layer's weights are multiplied by 10 and its gradient divided by 10 (what happens to a layer
#    followed by a normalisation, where $L(10w) = L(w)$), does the step become 10 times larger?
#
# Hint: look at the *units* of the ratio. $\hat m$ has the units of $g$; $\hat m/\sqrt{\hat v}$ has none.

# %% [markdown]
# ## Run: the scale-invariance check
#
# `classroom.scale_check` steps a layer of 50 weights three times three ways (as it is, loss × 10,
# weights × 10) and compares the steps.

# %%
# ε is set (almost) to 0, so that only the formulas differ: ε itself is not scale-invariant
rules = {"LAMB (paper)": (optim.LAMB, dict(lr=0.1, eps=1e-12)), "LARS (paper)": (optim.LARS, dict(lr=1.0, eps=0.0))}
rules.update({name: (cls, dict(lr=1.0, eps=0.0) if issubclass(cls, optim.LARS) else dict(lr=0.1, eps=1e-12))
              for name, (cls, _) in variants.VARIANTS.items()})
print(f"{'rule':24s} {'loss x10: step ratio':>21s} {'same?':>6s}   {'weights x10: step ratio':>24s} {'10x?':>5s}")
for name, (cls, settings) in rules.items():
    check = classroom.scale_check(cls, settings)
    print(f"{name:24s} {check.loss_scaled_ratio:21.4g} {'yes' if check.keeps_loss_scale else 'NO':>6s}   "
          f"{check.weight_scaled_ratio:24.4g} {'yes' if check.keeps_weight_scale else 'NO':>5s}")

# %% [markdown]
# ## Read
#
# - **The article's denominator** and **LARS's local lr on Adam** fail both: $\lVert g + \lambda w\rVert$ and
#   $\lVert g\rVert + \lambda\lVert w\rVert$ carry the gradient's units, so loss × 10 makes the step 10 times
#   *smaller* and weights × 10 (gradient / 10) make it over 100 times larger (the printed ratio), not 10. LAMB divides by the norm
#   of Adam's update, which has no units; that is the whole difference from LARS.
# - **First moment in the ratio** fails both. $\lVert\hat m\rVert$ carries the gradient's units: loss × 10
#   makes the step 10 times *smaller*; weights × 10 (gradient / 10) makes it over 100 times larger, not 10.
#   The learning rate now depends on the scale of the loss, which is exactly what the trust ratio was
#   meant to remove (and mixed-precision loss scaling would change the training).
# - **No $\lambda w$ in the ratio** passes both, because without weight decay it *is* the paper's rule.
#   Its defect shows with $\lambda > 0$ when the Adam direction is small beside $\lambda w$ (dead
#   units, vanishing gradients): the ratio divides by almost nothing and multiplies the decay term, so
#   the step is far larger than $\eta\phi(\lVert w\rVert)$ (see the next cell).
# - **Ratio on the gradient** keeps the loss scale but not the weight scale: Adam divides each
#   coordinate by its own $\sqrt{\hat v}$, which cancels most of the factor put on $g$. The result is
#   *close to* AdamW, not equal: the factor changes from step to step, so $m$ and $v$ average gradients
#   scaled differently, and the weight-scale check prints a ratio near 1 (not exactly 1, and far from 10).
#   Every weight moves by about $\eta$, whatever the size of its layer.
# - **LARS without $\lVert w\rVert$** is normalised gradient descent: every layer moves by the same
#   *absolute* amount, so a layer 10 times larger takes the same step instead of a 10 times larger one.
#
# The check with weight decay, on a layer whose gradient is nearly zero:

# %%
import numpy as np

from lamb_edu import Tensor

for name, cls in (("LAMB (paper)", optim.LAMB), ("no λw in the ratio", variants.LAMBNoDecayInRatio)):
    w = Tensor(np.array([0.3, -0.2, 0.1, 0.4]), requires_grad=True)
    before = w.data.copy()
    w.grad = np.full(4, 1e-13)  # a dead layer: the Adam direction is almost 0
    cls([w], lr=0.1, weight_decay=0.01).step()
    print(f"{name:20s} ‖w‖ = {np.linalg.norm(before):.3f}, ‖step‖ = {np.linalg.norm(w.data - before):.4g}"
          f"  (the paper's rule promises lr·‖w‖ = {0.1 * np.linalg.norm(before):.4g})")

# %% [markdown]
# ## Run: the badly scaled two-layer problem of notebook 02
#
# The same problem as notebook 02 (layer A's optimum is 4, layer B's 0.04), each rule with the
# learning rate the paper's rule uses there. **Predict** first: which rules will treat the two
# layers alike in their own units (a straight path to the star)?

# %%
two_layer = {"LAMB (paper)": (optim.LAMB, dict(lr=0.05))}
two_layer.update({name: (cls, dict(lr=0.05)) for name, (cls, _) in variants.VARIANTS.items()
                  if issubclass(cls, optim.LAMB)})
two_layer["LARS (paper)"] = (optim.LARS, dict(lr=5.0, momentum=0.9, trust_coefficient=0.001))
two_layer["LARS without ‖w‖"] = (variants.LARSNoWeightNorm, dict(lr=5.0, momentum=0.9, trust_coefficient=0.001))
paths = experiments.from_sgd_to_lamb(quick=QUICK, optimizers=two_layer)
figure = plots.plot_two_layer_trajectories(paths, names=list(two_layer))
for name in two_layer:
    reached = paths.steps_to_reach(name)
    print(f"{name:24s} within 10 % of the optimum in both layers from step: {reached if reached is not None else 'never'}")

# %% [markdown]
# **Read.** On one-weight layers $u/\lVert u\rVert$ is $\pm 1$, so the paper's LAMB and "no $\lambda w$" (no
# decay is used) take the same path. The two rules with $\lvert g\rvert$ in the denominator (the article's
# denominator and LARS's local lr on Adam, identical without decay) scale each layer's step by
# $\lvert w\rvert/\lvert g\rvert$: where the gradient is steep (layer B) they crawl, and near an optimum,
# where $g \to 0$, they leap (read their step counts above). The first-moment rule divides by $\lvert\hat m\rvert$, which shrinks
# near the optimum, so its steps blow up there and it never settles. "Ratio on the gradient" is Adam:
# both layers move by about $\eta$ in absolute terms, a large relative jump for small layer B (look at
# the shape of its path, not only at the step count: on this tiny problem Adam's lr happens to suit
# both layers). LARS without $\lVert w\rVert$ also moves both layers by the same absolute amount, about
# $\eta\gamma$ per step, so its path is bent towards the small layer first.

# %% [markdown]
# ## Run: MNIST, with the trust ratios per layer
#
# Each LAMB rule trains the same network from the same seed with the paper's settings (bias
# correction on, lr 0.01, betas (0.9, 0.999), weight decay 0.01); full mode: 3 epochs of the 60 000
# images, quick mode: 2 epochs of 12 000. **Predict**: which rules will train like the paper's, and
# which rule's first trust ratios will be far from the $\approx 0.02$ to $0.04$ of notebook 03?

# %%
mnist = classroom.misquotes_on_mnist(quick=QUICK)
network = mnist.summary()["network"]
print(f"network: {network}, {mnist.train_size} training images, tested on {mnist.test_size}")
for label, (run,) in mnist.runs.items():
    print(f"{label:22s} final test accuracy {100 * run.final_test_accuracy:5.1f} %   first r per layer "
          + " ".join(f"{r:8.3g}" for r in run.trust_ratio[0]))
figure = plots.plot_mnist_comparison(mnist, "The paper's LAMB and its misquotes on MNIST")

# %%
figure = plots.plot_trust_per_layer(mnist)

# %% [markdown]
# **Read.** The paper's rule and "no $\lambda w$" train alike: on MNIST the decay term is small beside
# the Adam direction. The rules with a gradient-sized denominator (the article's denominator, LARS's
# local lr, the first moment) start with trust ratios far from the $\approx 0.02$ to $0.04$ of the paper's
# rule (the printed first $r$): $\lVert g\rVert$ and $\lVert\hat m\rVert$ are the size of a gradient, not of
# an update with entries $\approx\pm 1$, so their steps are set by the scale of the loss. "Ratio on the
# gradient" logs large ratios too, but Adam divides them away: it trains close to AdamW at lr 0.01. Which one trains "better" after a few epochs is not the point: a rule
# whose step depends on the loss scale, or ignores the layer's size, needs its learning rate tuned
# again for every network.
#
# ## Exercises
#
# 1. `LAMBNoDecayInRatio` is the paper's rule when $\lambda = 0$. Find the smallest $\lambda$ at which its
#    MNIST run (quick mode) differs visibly from the paper's, and explain with the formula for its
#    step norm.
# 2. Repeat the scale check with `optim.LAMB(..., weight_decay=0.01)`. Does the paper's rule still pass
#    the weight-scale check? Why not, and why is that not a defect?
# 3. Write the article's sentence as a rule: LAMB with the trust ratio clipped at 10 instead of
#    $\lVert w\rVert$ (it is the May 2019 code's rule, notebook 03, not a misquote of that code). Subclass
#    `optim.LAMB`, override `trust_ratio` (or `update`, with the pieces of `optim.functional`), set
#    `fused_update = None`, and run the scale check. What changes for a layer with $\lVert w\rVert = 13$?
# 4. A tutorial writes LARS as $\Delta w = -\eta\,\frac{\lVert w\rVert}{\lVert g\rVert}\, g$ with no
#    momentum. Which scale checks does it pass? Compare with `optim.LARS(..., momentum=0)`.
#
# ## Solutions
#
# <details><summary>1.</summary>
#
# Its step norm is $\eta\phi(\lVert w\rVert)\,\lVert a + \lambda w\rVert/\lVert a\rVert$ with
# $a = \hat m/(\sqrt{\hat v}+\epsilon)$, so it differs when $\lambda\lVert w\rVert$ is comparable with
# $\lVert a\rVert$. For the first layer $\lVert a\rVert \approx \sqrt{200\,704} \approx 448$ early and
# $\lVert w\rVert \approx 9.2$, so the two terms are comparable only near $\lambda \approx 448/9.2 \approx 50$;
# later, as $\lVert a\rVert$ shrinks, smaller $\lambda$ suffices, so look for the runs to part late in
# training first.
# </details>
#
# <details><summary>2.</summary>
#
# No: $u = a + \lambda w$ and scaling $w$ by 10 scales only the $\lambda w$ part, so the direction
# changes. Weight decay is meant to depend on the size of $w$ (it pulls large weights back more), so
# this is the rule working as intended; the invariance is a property of the gradient part.
# </details>
#
# <details><summary>3.</summary>
#
# Compute `r = min(F.trust_ratio(norm(w), norm(u)), 10.0)` instead of clamping $\lVert w\rVert$. For a layer
# with $\lVert w\rVert = 13$ and $\lVert u\rVert$ = 1.3 the paper's $r$ is 10/1.3 = 7.7 and the clipped
# ratio is min(13/1.3, 10) = 10: not the same, the clipped ratio steps 30 % further. For
# $\lVert u\rVert = 0.5$ the paper gives 20 and the clipped ratio 10. Both pass the loss-scale check; the
# clipped ratio also passes the weight check until the ratio reaches 10.
# </details>
#
# <details><summary>4.</summary>
#
# Both: $\lVert w\rVert/\lVert g\rVert\cdot g$ has no gradient units (loss × 10 cancels) and grows with
# $w$ when $g$ shrinks as $1/c$ ($c\lVert w\rVert \cdot (g/c)/(\lVert g\rVert/c) = c\,\lVert w\rVert\, g/\lVert g\rVert$).
# It is LARS with momentum 0, weight decay 0 and trust coefficient 1.
# </details>
#
# ## Summary
#
# - LAMB's step is $\eta\,\phi(\lVert w\rVert)$ per layer, whatever the scale of the loss or of the gradient:
#   check a formula for that with the loss × 10 and the weights × 10.
# - A gradient-sized denominator ($\lVert g + \lambda w\rVert$, $\lVert g\rVert + \lambda\lVert w\rVert$,
#   $\lVert\hat m\rVert$) brings the gradient's units back; a ratio put on the gradient before Adam is
#   divided away; LARS without $\lVert w\rVert$ steps the same absolute amount in every layer.
# - Dropping $\lambda w$ from the ratio is harmless in some regimes and not in others: test the edge
#   cases (a dead layer). Cite where a formula is printed before you call it a misquote.
