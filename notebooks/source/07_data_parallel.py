# %% [markdown]
# # 7. Data-parallel training: one all-reduce per step, and why large batches scale
#
# LAMB was made to train BERT with batches of 32K and 64K sequences on 1024 TPU chips. One device
# cannot compute such a batch quickly; many can, each taking a slice. This notebook runs that on MPI,
# with `lamb-edu train --data-parallel`, checks that it computes the very same run as one process,
# measures what the communication costs, and predicts on paper how BERT-Large would scale.
#
# **You will learn**
# - how $N$ workers compute the gradient of one global batch and why their step equals one process's;
# - what an all-reduce costs: a latency per message plus bytes over bandwidth, and the ring algorithm;
# - why LAMB's per-layer norms need one more (small) collective when the optimizer state is sharded;
# - why a large batch is what lets hundreds of workers stay busy.

# %%
QUICK = False  # True: the small, fast settings; the committed outputs use the setting printed below

# %matplotlib inline
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lamb_edu import distributed, experiments, plots
from lamb_edu.backend import np

QUICK = experiments.quick_mode(default=QUICK)  # LAMB_EDU_QUICK=1 (as in CI) forces quick mode
print("mode:", "quick" if QUICK else "full")
REPO = Path(lamb_edu.__file__).resolve().parents[1]  # the checkout these cells import

# %% [markdown]
# ## One global batch, $N$ workers
#
# The gradient of the mean loss over a global batch $B$ of $|B|$ examples, cut into slices $B_r$
# (one per rank $r = 0 \dots N-1$), is a weighted sum of the slices' mean gradients:
#
# $$g = \frac{1}{|B|}\sum_{i\in B}\nabla \ell_i = \sum_{r=0}^{N-1} \frac{|B_r|}{|B|}\, g_r,
#   \qquad g_r = \frac{1}{|B_r|}\sum_{i\in B_r}\nabla \ell_i .$$
#
# So each rank back-propagates its slice with weight $|B_r|/|B|$, and one **all-reduce** (every rank
# ends with the sum over ranks) gives every rank $g$. Every rank then takes the same optimizer step
# from the same weights (rank 0's initial weights are broadcast), so the weights stay identical on all
# ranks without ever being sent. `lamb_edu.distributed` keeps all gradients in one flat float32 buffer,
# so a step costs **one** `Allreduce` of $4P$ bytes for $P$ parameters.
#
# The sums are the same numbers added in another order, so the $N$-rank run equals the one-process
# run to float32 rounding, not bit for bit. We check it: the same seeded LAMB run, once on one process
# and once with `mpiexec -n 2 ... --data-parallel`, and again with `--shard-optimizer` (ZeRO stage 1).

# %%
EXAMPLES, EPOCHS = (512, 1) if QUICK else (4096, 2)
RUN = ["--optimizer", "lamb", "--lr", "0.02", "--weight-decay", "0.01", "--batch-size", "128", "--hidden", "64",
       "--train-size", str(EXAMPLES), "--epochs", str(EPOCHS), "--seed", "1"]
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
HAS_MPI = shutil.which("mpiexec") is not None
work = Path(tempfile.mkdtemp(prefix="lamb-edu-07-"))


def train(name, *flags, ranks=1):
    """Run `lamb-edu train` (under mpiexec when ranks > 1) into work/name; return its losses and weights."""
    out = work / name
    command = [sys.executable, "-m", "lamb_edu", "train", *RUN, *flags, "--out", str(out)]
    if ranks > 1:
        command = ["mpiexec", "-n", str(ranks), *command]
    subprocess.run(command, env=ENVIRONMENT, check=True, timeout=300, capture_output=True, text=True)
    losses = np.asarray(json.loads((out / "checkpoint.json").read_text())["history"]["step_loss"])
    with np.load(out / "checkpoint.npz", allow_pickle=False) as saved:
        weights = np.concatenate([saved[key].ravel() for key in saved.files if key.startswith("model/")])
    return losses, weights, json.loads((out / "summary.json").read_text())


reference = train("one-process")
if HAS_MPI:
    for flags in ([], ["--shard-optimizer"]):
        losses, weights, summary = train("two-ranks" + "".join(flags), "--data-parallel", *flags, ranks=2)
        print(f"2 ranks {' '.join(flags) or '(plain)':<18}: {len(losses)} steps; largest loss difference "
              f"{np.abs(losses - reference[0]).max():.1e}, largest weight difference {np.abs(weights - reference[1]).max():.1e} "
              f"(weights up to {np.abs(reference[1]).max():.2f})")
    print("world size recorded in summary.json:", summary["data_parallel"]["world_size"])
    print("optimizer state per rank with --shard-optimizer:", summary["data_parallel"]["optimizer_state_bytes"])
else:
    print("mpiexec is not installed (pip install mpi4py mpich): the two-rank runs are skipped")

# %% [markdown]
# The differences are a few units in the last place of float32 (about $10^{-7}$ relative): the same
# run. With `--shard-optimizer` each rank keeps LAMB's $m$ and $v$ only for its half of the flat
# parameter buffer (the state per rank is halved), updates that half, and an `Allgather` gives every
# rank all the new weights. A layer can be cut between two ranks, and LAMB's trust ratio needs the
# whole layer's $\lVert w\rVert$ and $\lVert u\rVert$: each rank adds up the squares of its pieces and
# one more all-reduce of these partial sums (two numbers per layer) completes them. Adam needs no such
# step; LAMB and LARS do (see `lamb_edu/distributed/sharded.py`).
#
# ## What an all-reduce costs
#
# `benchmarks/bench_data_parallel.py` times a step of the MLP 784-256-256-10 (0.27M parameters, a
# 1.07 MB gradient) at 1, 2 and 4 ranks for one global batch of 512, split into compute, all-reduce
# and optimizer step, and times all-reduces of 4 KiB to 16 MiB. We read its JSON (or measure a small
# version now when it is missing).

# %%
measured = REPO / "benchmarks" / "data_parallel.json"
if not measured.is_file() and HAS_MPI:
    measured = work / "data_parallel.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_data_parallel.py"), "--quick", "--ranks", "1", "2",
                    "--json", str(measured)], env=ENVIRONMENT, check=True, timeout=300, capture_output=True)
bench = json.loads(measured.read_text()) if measured.is_file() else None
if bench is not None:
    figure = plots.plot_scaling(bench["runs"], title="MLP 784-256-256-10, LAMB, global batch 512 (CPU processes)")
    for run in bench["runs"]:
        print(f"{run['ranks']} ranks: step {1e3 * run['step_seconds']:.1f} ms = compute {1e3 * run['compute_seconds']:.1f} "
              f"+ all-reduce {1e3 * run['allreduce_seconds']:.1f} + optimizer {1e3 * run['optimizer_seconds']:.1f}; "
              f"{run['images_per_second']:.0f} images/s")

# %% [markdown]
# **Reading it.** Compute per rank shrinks as the slice shrinks, but the all-reduce is a new cost
# that one process never pays. The numbers in the committed file were measured on a small shared
# machine with 2 cores: 4 ranks on 2 cores wait for each other and the all-reduce is slow; rerun the
# benchmark on your own machine.
#
# A message of $n$ bytes costs about $T(n) = \alpha + n/\beta$: a fixed latency $\alpha$ (waking up the
# peers, handshakes) plus the bytes over the bandwidth $\beta$. A least-squares line through the
# measured points gives both.

# %%
if bench is not None and bench.get("allreduce_fit"):
    fit = bench["allreduce_fit"]
    largest = bench["runs"][-1]
    figure = plots.plot_allreduce_fit(largest["allreduce_by_size"], fit["latency_seconds"],
                                      fit["bandwidth_bytes_per_second"], largest["ranks"])
    latency, bandwidth = distributed.fit_latency_bandwidth([p["bytes"] for p in largest["allreduce_by_size"]],
                                                           [p["seconds"] for p in largest["allreduce_by_size"]])
    link_latency, link_bandwidth = distributed.ring_link_from_fit(latency, bandwidth, largest["ranks"])
    print(f"fit on {largest['ranks']} ranks: {1e6 * latency:.0f} µs + bytes / {bandwidth / 1e9:.2f} GB/s;  "
          f"per ring link: α = {1e6 * link_latency:.0f} µs, β = {link_bandwidth / 1e9:.2f} GB/s")

# %% [markdown]
# ## The ring all-reduce, and BERT-Large on paper
#
# In a ring all-reduce over $p$ workers each message is cut into $p$ pieces that travel around the
# ring twice (a reduce-scatter, then an all-gather): $2(p-1)$ hops, each paying the link latency
# $\alpha$ and moving $n/p$ bytes at the link bandwidth $\beta$:
#
# $$T_{\text{ring}}(p, n) = 2(p-1)\,\alpha + \frac{2(p-1)}{p}\,\frac{n}{\beta}.$$
#
# The bandwidth term barely grows with $p$ (it tends to $2n/\beta$); the latency term grows linearly.
# A synchronous step that does not overlap the two costs takes
#
# $$T_{\text{step}} = \frac{|B|}{p}\, t_{\text{example}} + T_{\text{ring}}(p, 4P), \qquad
#   \text{efficiency} = \frac{\frac{|B|}{p}\, t_{\text{example}}}{T_{\text{step}}}
#   = \frac{\text{speed-up over one worker}}{p}.$$
#
# **Assumptions, stated.** BERT-Large: $P = 340$M parameters, float32 gradients ($4P = 1.36$ GB per
# all-reduce), sequences of 128 tokens. Training costs about $6P$ FLOPs per token (forward $2P$,
# backward $4P$), so $6 \cdot 340\text{M} \cdot 128 = 2.6 \times 10^{11}$ FLOPs per sequence; a GPU
# sustaining 50 TFLOP/s (about 40 % of a V100's tensor-core peak) takes $t_{\text{example}} = 5.2$ ms.
# Network: 100 Gb/s links ($\beta = 12.5$ GB/s) with $\alpha = 5\ \mu$s. An epoch: 10 million sequences.

# %%
PARAMETERS, SEQUENCE, GPU_FLOPS = 340e6, 128, 50e12
SECONDS_PER_EXAMPLE = 6 * PARAMETERS * SEQUENCE / GPU_FLOPS
NETWORK = {"bandwidth": 100e9 / 8, "latency": 5e-6}
EPOCH = 10e6
WORKERS = [8, 16, 32, 64, 128, 256, 512, 1024]
BATCHES = [512, 2048, 8192, 32768, 65536]
predictions = {(p, b): distributed.predict_data_parallel_step(PARAMETERS, p, b, seconds_per_example=SECONDS_PER_EXAMPLE,
                                                              **NETWORK)
               for p in WORKERS for b in BATCHES if b >= p}
print(f"t_example = {1e3 * SECONDS_PER_EXAMPLE:.1f} ms; one all-reduce of {4 * PARAMETERS / 1e9:.2f} GB: "
      f"{1e3 * predictions[(8, 512)]['allreduce_seconds']:.0f} ms on 8 workers, "
      f"{1e3 * predictions[(1024, 65536)]['allreduce_seconds']:.0f} ms on 1024")
print("\nefficiency (%)" + "".join(f"{f'batch {b}':>12}" for b in BATCHES))
for p in WORKERS:
    cells = "".join(f"{100 * predictions[(p, b)]['efficiency']:>12.0f}" if (p, b) in predictions else f"{'-':>12}"
                    for b in BATCHES)
    print(f"{p:>5} workers " + cells)
figure = plots.plot_predicted_scaling(WORKERS, BATCHES, predictions, EPOCH,
                                      title="BERT-Large on paper: 100 Gb/s ring, 5 µs, 50 TFLOP/s per GPU")

# %% [markdown]
# **Why large batches are what make this scale.** The all-reduce costs the same whatever the batch:
# 0.19 to 0.23 s for 1.36 GB, from 8 to 1024 workers (the ring's bandwidth term is nearly independent
# of $p$, and the latency term, $2 \cdot 1023 \cdot 5\ \mu s = 10$ ms, is still small). What changes is
# the compute it is set against: $\frac{|B|}{p}\, t_{\text{example}}$. At batch 512 on 1024 workers
# there is not even one sequence per worker; at 64K each computes 64 sequences (0.33 s) and the
# efficiency is about 60 %. Put the other way, an epoch has $D/|B|$ steps and therefore $D/|B|$
# all-reduces: a batch 128 times larger sends 128 times fewer gradients per epoch. The right panel
# shows it: with batch 512 adding workers stops helping beyond a few dozen (the epoch time is the
# all-reduces'), while with 32K and 64K the epoch keeps getting shorter up to 1024 workers. That is the
# whole case for LAMB: it keeps the accuracy of small-batch training at batch 32K to 64K, and so lets
# BERT be trained by a thousand workers in hours instead of days (76 minutes in the LAMB paper, on TPUs
# with a much faster interconnect than this 100 Gb/s one). Overlapping the all-reduce with the
# backward pass (as PyTorch's DDP does, bucket by bucket) and sending 16-bit gradients push the
# efficiency higher still, but they do not change the argument.
#
# ## Exercises
#
# 1. At batch 32K, how many workers can BERT-Large use before the predicted efficiency drops below
#    50 %? Read it off the table, then solve $\frac{|B|}{p}t_{\text{example}} = T_{\text{ring}}(p)$ for $p$.
# 2. Send 16-bit gradients (`bytes_per_value=2`) and use a 400 Gb/s network. Which cells of the table
#    change most, and why does the latency term start to matter at 1024 workers?
# 3. With the fit of your own machine (`link_latency`, `link_bandwidth` above), predict the step of
#    the MLP at 2 and 4 ranks and compare with the measured all-reduce times. Where does the model fail
#    on a machine whose ranks share 2 cores?
#
# ## Solutions

# %%
# 1. Efficiency >= 50 % while compute >= all-reduce: (B/p)·t >= T_ring(p) ≈ 2·4P/β (the latency is small).
ring = 2 * 4 * PARAMETERS / NETWORK["bandwidth"]
print(f"1. p <= B·t / T_ring = {32768 * SECONDS_PER_EXAMPLE / ring:.0f} workers at batch 32K (table: 50 % near 512-1024)")
# 2. Half the bytes, four times the bandwidth: the all-reduce is 8 times faster; efficiency rises most where it was low.
for p in (256, 1024):
    fast = distributed.predict_data_parallel_step(PARAMETERS, p, 8192, seconds_per_example=SECONDS_PER_EXAMPLE,
                                                  bandwidth=400e9 / 8, latency=5e-6, bytes_per_value=2)
    print(f"2. batch 8K, {p} workers: {100 * predictions[(p, 8192)]['efficiency']:.0f} % -> {100 * fast['efficiency']:.0f} %; "
          f"latency part {1e3 * 2 * (p - 1) * 5e-6:.1f} ms of {1e3 * fast['allreduce_seconds']:.1f} ms")
# 3. The model against the measurement of the MLP's gradient (when a measurement was read above).
if bench is not None and bench.get("allreduce_fit"):
    for run in bench["runs"][1:]:
        model = distributed.ring_allreduce_seconds(run["gradient_bytes"], run["ranks"], link_bandwidth, link_latency)
        print(f"3. {run['ranks']} ranks: ring model {1e3 * model:.2f} ms, measured {1e3 * run['allreduce_seconds']:.2f} ms")
    print("   More ranks than cores: a rank waits for a core as well as for the network, which no link model describes.")

# %% [markdown]
# ## Summary
#
# - $N$ workers each compute the gradient of their slice; one all-reduce of the flat gradient buffer
#   sums the shares, and every worker takes the same step: the run equals one process's to float32
#   rounding (checked above).
# - An all-reduce costs a latency per message plus bytes over bandwidth; the ring algorithm sends
#   $2\frac{p-1}{p}$ times the gradient's bytes whatever the number of workers.
# - Sharding the optimizer state (ZeRO-1) divides $m$ and $v$ by $N$; Adam shards for free, LAMB and
#   LARS need one more small all-reduce of per-layer sums of squares for their trust ratios.
# - A step's compute shrinks as $|B|/p$ while its all-reduce does not: only a large batch keeps hundreds
#   of workers busy. Keeping that large batch accurate is the optimizer's job *and* its tuning's:
#   notebook 06 measures how much of it each one does.
