# %% [markdown]
# # 1. Moving averages and bias correction
#
# Adam, AdamW and LAMB do not step along the gradient of the current batch. They step along a
# **moving average** of past gradients, scaled by a moving average of past squared gradients. This
# notebook looks at that averaging on its own, on a noisy curve, before any network is involved.
#
# **You will learn**
# - what the exponential moving average (EMA) $m_t$ is and how $\beta$ trades noise for lag;
# - why an EMA started at zero is *biased* towards zero at the start, worst for $\beta$ close to 1;
# - what bias correction $\hat m_t = m_t / (1-\beta^t)$ does, and how quickly it fades;
# - why this matters for an optimizer's first steps (the pytorch-lamb code of June 2019 turns it off;
#   the May 2019 code the article ran folds it into the step size, notebook 4).
#
# This is the first section of Ben Mann's *An intuitive understanding of the LAMB optimizer* (2019);
# the noisy curve is the one of the fast.ai optimizer lesson the article borrows its pictures from.

# %%
QUICK = False  # True: the small, fast settings; the committed outputs use the setting printed below

# %matplotlib inline
from lamb_edu import classroom, experiments, plots

QUICK = experiments.quick_mode(default=QUICK)  # LAMB_EDU_QUICK=1 (as in CI) forces quick mode
print("mode:", "quick" if QUICK else "full")

# %% [markdown]
# ## The equations
#
# Given a series $x_1, x_2, \dots$ (for Adam, the gradients $g_t$), the exponential moving average
# starts at zero and mixes in each new value with weight $1-\beta$:
#
# $$m_0 = 0, \qquad m_t = \beta\, m_{t-1} + (1-\beta)\, x_t .$$
#
# Unrolled, $m_t = (1-\beta) \sum_{i=1}^{t} \beta^{\,t-i} x_i$: a weighted sum of the past whose weights
# add up to $(1-\beta)\sum_{i=0}^{t-1}\beta^i = 1-\beta^t$, not to 1. The missing weight $\beta^t$ sits on
# the zero we started from. Dividing by the sum of the weights removes that pull towards zero:
#
# $$\hat m_t = \frac{m_t}{1-\beta^t}.$$
#
# At $t=1$, $\hat m_1 = \frac{(1-\beta)x_1}{1-\beta} = x_1$ exactly: the corrected average starts at the
# first data point. As $t$ grows, $\beta^t \to 0$ and the correction factor $1/(1-\beta^t)$ goes to 1.
#
# Adam keeps two such averages, $m_t$ of the gradients with $\beta_1$ and $v_t$ of the squared
# gradients with $\beta_2$, and corrects both (Kingma & Ba, 2015).
#
# ## The experiment
#
# `experiments.debias` samples 200 points of $1-(x/3)^2$ for $x$ from $-4$ to $4$, adds Gaussian
# noise (standard deviation 0.1, seed 0), and averages the series from left to right for
# $\beta = 0.5, 0.7, 0.9, 0.99$. It returns the data; `plots` draws it.

# %%
result = experiments.debias(quick=QUICK, seed=0)
figure = plots.plot_moving_averages(result, bias_correction=False)

# %% [markdown]
# **What to look for.** Small $\beta$ follows the data closely but keeps much of its noise; large
# $\beta$ is smooth but lags behind the curve (at $\beta=0.9$ the red line is shifted to the right).
# At the left edge every average starts near 0, not at the first data point ($\approx -0.77$): the
# bias. For $\beta=0.99$ it never catches up in 200 points; its first value is only 1 % of the first
# data point.

# %%
figure = plots.plot_moving_averages(result, bias_correction=True)
for beta in result.betas:
    print(
        f"beta={beta:<5} first data point {result.data[0]:+.3f}   first EMA {result.average[beta][0]:+.4f}"
        f"   first debiased EMA {result.debiased[beta][0]:+.3f}"
    )

# %% [markdown]
# **What to look for.** With the correction every average starts exactly at the first data point
# (the printed numbers). The problem is smaller but has not gone away: for $\beta=0.99$ the corrected
# average is still an average over roughly the last $1/(1-\beta)=100$ points, so it still lags far
# behind a curve that changes within 200 points. Bias correction fixes the *start*, not the lag.
#
# ## How long the correction matters
#
# The factor $1/(1-\beta^t)$ is $1/(1-\beta)$ at the first step ($10$ for $\beta=0.9$, $100$ for
# $\beta=0.99$) and falls towards 1. Each panel has its own $y$ axis, as in the article.

# %%
figure = plots.plot_bias_correction_factor(result)
for beta in result.betas:
    print(
        f"beta={beta:<5} factor at t=1: {result.factor[beta][0]:7.2f}   "
        f"below 1.01 from step {result.steps_to_within(beta)}"
    )

# %% [markdown]
# **What to look for.** For $\beta=0.9$ the factor is 10 at the first step and within 1 % of 1 after
# 44 steps: "a few dozen steps", as the article says. For Adam's usual $\beta_2=0.999$ it takes
# thousands of steps (exercise 2), so the correction of $v_t$ matters for a long time.
#
# Why an optimizer cares: without correction, Adam's step is $m_t/\sqrt{v_t}$ instead of
# $\hat m_t/\sqrt{\hat v_t}$, that is $\frac{1-\beta_1^t}{\sqrt{1-\beta_2^t}}$ times the corrected step
# (the same for every coordinate, $\epsilon$ aside). At $t = 1$ that is
# $0.1/\sqrt{0.001}\approx 3.16$ for $\beta=(0.9, 0.999)$. It is **not** largest at $t=1$: the numerator
# $1-\beta_1^t$ grows faster than $\sqrt{1-\beta_2^t}$, so the ratio keeps rising for a dozen steps
# before it falls back to 1 after thousands:

# %%
import numpy as np

steps = np.arange(1, 20001)
ratios = {betas: experiments.uncorrected_step_ratio(*betas, steps) for betas in ((0.9, 0.999), (0.9, 0.99))}
figure = plots.plot_uncorrected_step_ratio(steps, ratios)
for (beta1, beta2), ratio in ratios.items():
    print(f"betas ({beta1}, {beta2}): {ratio[0]:.2f}x at t = 1, peak {ratio.max():.2f}x at t = {steps[ratio.argmax()]}, "
          f"below 1.01x from t = {steps[(ratio < 1.01) & (steps > steps[ratio.argmax()])][0]}")

# %% [markdown]
# **What to look for.** The printed lines give the peak and where it is reached for each pair of betas.
# This is what the June 2019 pytorch-lamb code does (it has no bias correction; the May 2019 code the
# article ran has it, folded into the step size). Under that rule, LAMB's early trust ratio
# $r = \lVert w\rVert/\lVert u\rVert$ *dips* over the first steps (notebook 03), because $\lVert u\rVert$ grows
# by this factor, while LAMB's step does not grow: the trust ratio divides the factor out. Does the
# factor also explain the early loss spike of the Adam baseline in notebook 04? Notebook 04 tests it
# (30 steps with and without the correction): the spike is there with the correction too, only lower.
#
# ## Try it: the uncorrected step's ratio
#
# Move $\beta_1$ and $\beta_2$ and see the ratio $\frac{1-\beta_1^t}{\sqrt{1-\beta_2^t}}$, its peak and when it
# is back near 1 (static render: the defaults, $\beta = (0.9, 0.999)$).

# %%
figure = classroom.uncorrected_ratio_view(beta1=0.9, beta2=0.999)

# %%
classroom.sliders(classroom.uncorrected_ratio_view, beta1=(0.5, 0.99, 0.01, 0.9), beta2=(0.9, 0.9999, 0.0001, 0.999))

# %% [markdown]
# ## Try it: β and the number of steps
#
# Move the sliders to pick $\beta$ and how many steps to look at. Without a widget frontend (a static
# render, CI) you see the figure at the default values, $\beta = 0.9$ and 50 steps.

# %%
figure = classroom.debias_view(beta=0.9, steps=50)

# %%
classroom.sliders(classroom.debias_view, beta=(0.5, 0.999, 0.001, 0.9), steps=(1, 200, 1, 50))

# %% [markdown]
# ## Exercises
#
# 1. Show that the weights of $m_t$ sum to $1-\beta^t$, and check it numerically: run
#    `experiments.exponential_moving_average` on a series of ones. What does it return without and with
#    bias correction?
# 2. Use `experiments.bias_correction_factor` to find the first step at which the factor is below 1.01
#    for $\beta_2 = 0.999$. Compare with the closed form $t > \ln(1/101)/\ln\beta$ (from
#    $\beta^t < 1/101$).
# 3. Without bias correction, what is the size of Adam's first step (per coordinate, in units of the
#    learning rate) for $\beta=(0.9, 0.99)$, the setting of notebook 4? Is the article's lr = 0.01 with
#    these betas closer to lr = 0.01 or to something larger?
#
# ## Solutions
#
# <details><summary>1.</summary>
#
# $(1-\beta)\sum_{i=0}^{t-1}\beta^i = (1-\beta)\frac{1-\beta^t}{1-\beta} = 1-\beta^t$ (a geometric sum).
# `experiments.exponential_moving_average(np.ones(5), 0.9)` returns $1-0.9^t$: 0.1, 0.19, 0.271, 0.3439,
# 0.40951; with `bias_correction=True` every value is exactly 1.
# </details>
#
# <details><summary>2.</summary>
#
# `experiments.bias_correction_factor(0.999, np.arange(1, 10001))` first falls below 1.01 at $t = 4613$;
# the closed form gives $t > \ln(1/101)/\ln 0.999 = 4612.8$, so $t = 4613$.
# </details>
#
# <details><summary>3.</summary>
#
# $\frac{1-\beta_1}{\sqrt{1-\beta_2}} = 0.1/\sqrt{0.01} = 1$: at $t=1$ the step is exactly lr per
# coordinate. But the ratio then rises to its peak, about 2.13 at $t = 13$ (printed above), and is back
# near 1 only after a few hundred steps, so the first few hundred steps are taken at up to about lr = 0.02.
# </details>
#
# ## Summary
#
# - An EMA started at zero is pulled towards zero by $\beta^t$; dividing by $1-\beta^t$ removes it.
# - The correction fixes the start, not the lag of a large $\beta$.
# - Without it Adam's step is $\frac{1-\beta_1^t}{\sqrt{1-\beta_2^t}}$ times too large (3.16 at $t=1$ for
#   $\beta = (0.9, 0.999)$, and more over the next dozen steps, as printed); LAMB's trust ratio (June rule)
#   divides that factor out.
