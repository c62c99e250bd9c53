# %% [markdown]
# # 4. Adam against LAMB on MNIST
#
# The article's first MNIST experiment trains the same network with Adam and with LAMB at learning
# rate 0.01 and betas (0.9, 0.99), and finds them "very similar", with LAMB a little better on test
# accuracy. This notebook repeats it from three seeds, so that you can see whether the difference is
# larger than the spread between seeds.
#
# **You will learn**
# - how the article's "Adam" baseline is built: the LAMB rule with the trust ratio switched off;
# - how to compare two optimizers honestly: several seeds, the same data order, the same network;
# - how to read a training-loss curve and a test-accuracy curve against the number of steps.

# %%
QUICK = False  # True: the small, fast settings; the committed outputs use the setting printed below

# %matplotlib inline
from lamb_edu import experiments, plots

QUICK = experiments.quick_mode(default=QUICK)  # LAMB_EDU_QUICK=1 (as in CI) forces quick mode
print("mode:", "quick" if QUICK else "full")

# %% [markdown]
# ## The two update rules
#
# Both sides use the rule of the article's code (cybertronai/pytorch-lamb), with no bias correction:
#
# $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\qquad
#   u_t = \frac{m_t}{\sqrt{v_t}+\epsilon} + \lambda w_{t-1}$$
#
# $$\text{Adam:}\quad w_t = w_{t-1} - \eta\, u_t \qquad\qquad
#   \text{LAMB:}\quad w_t = w_{t-1} - \eta\,\frac{\min(\lVert w_{t-1}\rVert, 10)}{\lVert u_t\rVert}\, u_t$$
#
# per parameter tensor (each weight matrix and each bias vector is one "layer"). Here
# $\eta = 0.01$, $\beta = (0.9, 0.99)$, $\epsilon = 10^{-6}$, $\lambda = 0$. In lamb-edu the Adam side is
# `optim.LAMB(..., use_trust_ratio=False)`: it computes the trust ratio (notebook 3 looks at it) but
# steps with 1.
#
# **The setup.** The article's code trained a small CNN (`nn.CNN` in lamb-edu, which notebooks 3 and 5
# train in full mode); it takes about ten times longer per epoch, so this comparison uses the MLP
# 784 → 256 → ReLU → 256 → ReLU → 10 (`nn.MLP([784, 256, 256, 10])`, PyTorch's initialisation), batch 512 (the article does not give its batch size for this experiment), 5 epochs
# of the 60 000 training images (590 steps), tested on the 10 000 test images after every epoch. The
# seed fixes the initial weights and the order of the batches; both optimizers get the same ones.
# Quick mode uses 8 epochs of 12 000 images, tests on 2 000, and runs seed 0 only.

# %%
comparison = experiments.adam_vs_lamb(quick=QUICK)
print("network:", comparison.summary()["network"])
for setting in comparison.settings:
    print(setting.label, setting.describe())
figure = plots.plot_mnist_comparison(comparison, plots.MNIST_TITLES["adam_vs_lamb"])

# %%
print(f"seeds: {comparison.seeds}")
for label in comparison.runs:
    accuracies = comparison.final_accuracies(label)
    per_seed = ", ".join(f"{100 * a:.2f}" for a in accuracies)
    print(f"{label:14s} final test accuracy: mean {100 * accuracies.mean():.2f} %  (per seed: {per_seed})")
difference = comparison.final_accuracies("LAMB lr 0.01") - comparison.final_accuracies("Adam lr 0.01")
print("LAMB minus Adam, per seed (percentage points):", ", ".join(f"{100 * d:+.2f}" for d in difference))
adam = comparison.final_accuracies("Adam lr 0.01")
print(f"spread between seeds (max - min): Adam {100 * (adam.max() - adam.min()):.2f} points")
first_losses = comparison.runs["Adam lr 0.01"][0].step_loss[:30]
print(f"Adam baseline, highest training loss in the first 30 steps: {first_losses.max():.2f} (ln 10 = 2.30)")

# %% [markdown]
# **What to look for.** Both training losses fall quickly and look alike, as in the article. In
# our full run (the MLP 784-256-256-10) the Adam baseline ends at about 96 % test accuracy and LAMB at
# about 97.7 %, and the gap (+1.57 to +1.78 points, in favour of LAMB from every seed) is several times
# the spread between seeds (0.22 points for Adam: 95.91 to 96.13 %): with three seeds, the article's
# "LAMB generalises better" holds here. An earlier version of lamb-edu, whose float32 rounding differed
# in the last bits, gave Adam 95.56 to 96.39 % and LAMB 97.35 to 97.79 % from the same seeds: 590 steps
# at this learning rate amplify rounding, so treat a few tenths of a point as noise.
#
# In the first steps the Adam baseline's loss jumps *above* chance level ($\ln 10 \approx 2.30$, printed
# above): without bias correction its steps grow to about twice its learning rate over the first dozen
# steps (notebook 01).
#
# Notice also that Adam's training loss drops faster in the first few dozen steps: LAMB starts with
# trust ratios far below 1 (notebook 3), a built-in warm-up. Where does the gap in test accuracy come
# from? Adam moves every weight by about $\eta$ per step, whatever the size of its layer; in the
# first layer (200 704 weights of size about 0.02) that is a large change, and its weight norm grows
# about six-fold, against about 1.5× with LAMB (notebook 3 shows the norms). *Hypothesis, not tested
# here:* larger weights make a sharper, more over-confident network, which costs test accuracy. Two
# ways to test it: compare the test *loss* of the two runs (over-confidence shows there before it shows
# in accuracy), and train the Adam baseline with weight decay, which keeps its weights smaller
# (exercise 4).
#
# ## Exercises
#
# 1. Repeat the comparison with bias correction on (`MnistSetting(..., bias_correction=True)` and
#    `experiments.train_mnist`). Which of the two optimizers changes more, and why (hint: notebook 1,
#    exercise 3)?
# 2. Train Adam at lr 0.001 instead of 0.01. Does the gap to LAMB close? What does that say about
#    comparing optimizers at one shared learning rate?
# 3. The article calls the curves "very similar". With three seeds, how large would a difference in
#    final accuracy have to be before you would call it real? Compute the standard deviation over
#    seeds from `comparison.final_accuracies(label)`.
# 4. Test the over-confidence hypothesis: print `run.test_loss` for both settings, then train the Adam
#    baseline with `weight_decay=0.01` (`MnistSetting("Adam wd", lr=0.01, betas=(0.9, 0.99), weight_decay=0.01,
#    use_trust_ratio=False)`). Does the gap to LAMB shrink when Adam's weights stay smaller?
#
# ## Solutions
#
# <details><summary>1.</summary>
#
# Adam changes more. With $\beta = (0.9, 0.99)$ and no correction its step is 1 to 2.1 times lr over the
# first few hundred steps (notebook 01, exercise 3); with the correction it is lr. LAMB's step is
# $\eta\min(\lVert w\rVert, 10)$ either way: the trust ratio divides the common factor out.
# </details>
#
# <details><summary>2.</summary>
#
# At lr 0.001 Adam's weights grow far less and its accuracy usually comes close to LAMB's. Each optimizer
# has its own best learning rate: a comparison at one shared lr compares the lr as much as the rule.
# Tune each, or compare over a range of lr.
# </details>
#
# <details><summary>3.</summary>
#
# `comparison.final_accuracies(label).std(ddof=1)`: about 0.1 points for Adam in the full run (0.45 in
# an earlier version's run, see above). With 3 seeds a difference should be several times the standard
# error of the difference of the means before you call it real: the 1.6 to 1.8 point gap passes.
# </details>
#
# <details><summary>4.</summary>
#
# If the test loss of the Adam baseline rises while its accuracy stays flat, its predictions are
# getting more confident without getting more right. If weight decay narrows the gap, weight growth is
# part of the story; if not, the hypothesis is not enough. Report what your runs show.
# </details>
#
# ## Summary
#
# - The article's "Adam" is the LAMB rule with trust ratio 1: call it the Adam baseline, not `optim.Adam`.
# - LAMB ends ahead from every seed here, by several times the seed spread.
# - Why is an open question: weight growth and over-confidence is a hypothesis to test, not a result.
