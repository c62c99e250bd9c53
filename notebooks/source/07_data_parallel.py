# %% [markdown]
# # 7. Data-parallel training: gradient buckets during backward, ZeRO-1, and why large batches scale
#
# LAMB was made to train BERT with batches of 32K and 64K sequences on 1024 TPU chips. One device
# cannot compute such a batch quickly; many can, each taking a slice. This notebook runs that on MPI,
# with `lamb-edu train --data-parallel`, checks that it computes the very same run as one process,
# measures what the communication costs, and predicts on paper how BERT-Large would scale.
#
# **You will learn**
# - how $N$ workers compute the gradient of one global batch and why their step equals one process's;
# - how the gradients travel in buckets while backward is still running, as PyTorch's DDP does;
# - what an all-reduce costs: a latency per message plus bytes over bandwidth, and the ring algorithm;
# - why ZeRO-1 (sharded optimizer state) moves no more bytes than plain data parallelism, and why LAMB
#   and LARS then need two numbers per layer more;
# - why a large batch is what lets hundreds of workers stay busy, and how far overlap stretches that.

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

import lamb_edu
from lamb_edu import classroom, distributed, experiments, nn, optim, plots
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
# ranks without ever being sent. `lamb_edu.distributed` keeps all gradients in one flat float32 buffer
# of $4P$ bytes for $P$ parameters, cut into **buckets** that are summed while backward runs (below).
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
              f"{np.abs(losses - reference[0]).max():.1e}, largest weight difference "
              f"{np.abs(weights - reference[1]).max():.1e} "
              f"(weights up to {np.abs(reference[1]).max():.2f})")
    print("world size recorded in summary.json:", summary["data_parallel"]["world_size"])
    print("optimizer state per rank with --shard-optimizer:", summary["data_parallel"]["optimizer_state_bytes"])
    print("bytes per step, by collective, with --shard-optimizer:", summary["data_parallel"]["traffic_bytes_per_step"])
else:
    print("mpiexec is not installed (pip install mpi4py mpich): the two-rank runs are skipped")

# %% [markdown]
# The differences are a few units in the last place of float32 (about $10^{-7}$ relative): the same
# run.
#
# ## Buckets: communication during backward
#
# Backward finishes the gradients in reverse: the last layer's first, the first layer's last. Waiting
# for all of them before sending anything leaves the network idle during backward and the processor
# idle during the all-reduce. PyTorch's DDP (and Horovod's tensor fusion) instead group the gradients
# into **buckets** in reverse parameter order and start a non-blocking all-reduce of a bucket as soon as
# its last gradient is final. Here backward writes each gradient straight into its slot of the flat
# buffer (`Tensor.grad_buffer`, DDP's `gradient_as_bucket_view`: no copy), and the autograd calls a hook
# on each parameter the moment its gradient is complete (`Tensor.register_post_accumulate_grad_hook`,
# as in torch); when a bucket's last gradient is in, the hook starts `Iallreduce` on it.
# `all_reduce_gradients` then waits only for what is still in flight.
#
# Two more details make it one collective a step. The step's **status** (how many ranks have a
# non-finite loss or gradient, and the sum of the losses) travels as two numbers in front of the last
# bucket, the one holding the first layer, which is held back until the loss is known; a NaN on one
# rank is seen by all in the same reduction as the gradient. And a bucket must be large enough that
# the latency per message stays small against its bytes, yet small enough that several leave during
# backward. DDP's default, 25 MB, holds the whole of these models: one bucket, sent when backward ends,
# overlapping nothing. `--bucket-mb` sets it; the default here, "auto", is 0.25 MB when every rank has a
# second core for a thread that moves the buckets during backward, and one bucket when it has not
# (why: the README's measurements; with one core per rank, overlap hides nothing). In 0.25 MB buckets the
# MLP 784-256-256-10 is cut so:

# %%
mlp = nn.MLP([784, 256, 256, 10], seed=0)
names, sizes = zip(*[(name, p.size) for name, p in mlp.named_parameters()])
plan = distributed.plan_buckets(list(sizes), 4, distributed.DEFAULT_BUCKET_MB * 2**20)
for number, indices in enumerate(plan):
    kilobytes = 4 * sum(sizes[i] for i in indices) / 1e3
    print(f"bucket {number}: {', '.join(names[i] for i in indices):<42} {kilobytes:7.1f} kB")
print(f"share of the gradient's bytes that can leave before backward ends: "
      f"{1 - sum(sizes[i] for i in plan[-1]) / sum(sizes):.0%}")

# %% [markdown]
# The first layer's weight is most of this MLP's gradient and is finished last, so at most the share
# printed above can hide behind backward; the CNN (two convolutions in front of a large fully
# connected layer) is the better case: its large `fc1` gradient is done early, and the expensive
# convolution backward follows. `tests/test_distributed_buckets.py` checks that the buckets start
# before the first layer's gradient exists, and that bucketed, accumulated and sharded runs equal the
# unbucketed one.
#
# ## ZeRO-1: the same bytes as plain data parallelism
#
# With `--shard-optimizer` each rank keeps LAMB's $m$ and $v$ only for its $1/N$ of the flat parameter
# buffer (the state per rank is divided by $N$). It needs only its shard of the summed gradient, so
# the buckets are **reduce-scattered** instead of all-reduced; the rank steps its shard, and an
# **all-gather** gives every rank all the new weights. A ring all-reduce *is* a reduce-scatter
# followed by an all-gather, so the bytes are the same (Rajbhandari et al. 2020). LAMB's trust ratio
# needs each layer's $\lVert u\rVert$, of which each rank holds only its shard's part, and
# $\lVert w\rVert$. Every rank holds all the weights, so $\lVert w\rVert$ could be computed locally,
# but that reads every weight on every rank ($N$ times its shard); so one all-reduce of **two numbers
# per layer**, the partial sums of squares of $w$ and of $u$ over the rank's pieces, completes both
# (8 more bytes per layer in the same message). LARS needs $\lVert g\rVert$ the same way; Adam shards
# for free. Counted for the MLP (bytes each rank sends per step in the ring algorithms):

# %%
for ranks in (2, 4):
    pretend = distributed.LocalWorld()
    pretend.size = ranks  # rank 0's bookkeeping in a world of `ranks` (no collective is called)
    model = nn.MLP([784, 256, 256, 10], seed=0)
    plain = distributed.DataParallel(model, pretend).traffic()
    sharded = distributed.ShardedOptimizer(optim.LAMB(model.parameters()),
                                           distributed.DataParallel(model, pretend)).traffic()
    print(f"{ranks} ranks: plain {distributed.ring_bytes_per_rank(plain, ranks) / 1e6:.4f} MB  {plain}")
    print(f"{' ' * len(str(ranks))}        ZeRO-1 {distributed.ring_bytes_per_rank(sharded, ranks) / 1e6:.4f} MB  "
          f"{sharded}")

# %% [markdown]
# The gradient's reduce-scatter and the parameters' all-gather add up to the plain all-reduce; what
# ZeRO-1 adds is the layer norms' all-reduce (two float64 per layer) and a copy of the two status
# numbers in each rank's part.
#
# ## What a step costs, measured
#
# `benchmarks/bench_data_parallel.py` times a step of the MLP and the CNN at 1, 2 and 4 ranks for one
# global batch of 512, plain and ZeRO-1, split into compute, communication that backward did not hide,
# and the optimizer step, against one process that trains without `DataParallel` ("single"); it also
# times all-reduces of 4 KiB to 16 MiB. We read its JSON (or measure a small version now when it is
# missing).

# %%
measured = REPO / "benchmarks" / "data_parallel.json"
if measured.is_file() and "machine" not in json.loads(measured.read_text()):
    measured = work / "missing.json"  # a file written by an older version of the benchmark: measure again
if not measured.is_file() and HAS_MPI:
    measured = work / "data_parallel.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_data_parallel.py"), "--quick", "--ranks", "1", "2",
                    "--json", str(measured)], env=ENVIRONMENT, check=True, timeout=300, capture_output=True)
bench = json.loads(measured.read_text()) if measured.is_file() else None
if bench is not None:
    print("machine:", bench["machine"])
    for model in ("mlp", "cnn"):
        runs = sorted((r for r in bench["runs"] if r["model"] == model and r.get("blas_threads", "1") == "1"),
                      key=lambda r: (r["mode"] != "single", r["mode"] != "plain", r["ranks"]))
        if not runs:
            continue
        one = runs[0]  # one process without DataParallel (plain on 1 rank in an older file)
        for run in runs:
            print(f"{model} {run['mode']:>7} {run['ranks']} ranks: step {1e3 * run['step_seconds']:6.1f} ms = compute "
                  f"{1e3 * run['compute_seconds']:6.1f} + exposed communication "
                  f"{1e3 * run['exposed_communication_seconds']:5.1f}"
                  f" + optimizer {1e3 * run['optimizer_seconds']:4.1f}; {run['images_per_second']:6.0f} images/s, "
                  f"{run['images_per_second'] / one['images_per_second']:.2f}x one process")
        for run in bench["runs"]:  # one process whose matrix products use both cores, when measured
            if run["model"] == model and run.get("blas_threads") == "2":
                print(f"{model}  single 1 rank, 2 BLAS threads: step {1e3 * run['step_seconds']:6.1f} ms; "
                      f"{run['images_per_second'] / one['images_per_second']:.2f}x one process on one core")
        figure = plots.plot_scaling(runs, title=f"{model.upper()}, LAMB, global batch {one['global_batch']} "
                                                "(CPU processes)")
    for run in bench.get("bucket_sweep", []):
        size = f"{run['bucket_mb']} MB" if run["bucket_mb"] else "one bucket"
        print(f"bucket sweep, {run['model']} {run['ranks']} ranks, {size:>10} ({run['buckets']} buckets): step "
              f"{1e3 * run['step_seconds']:.1f} ms, exposed communication "
              f"{1e3 * run['exposed_communication_seconds']:.1f} ms")

# %% [markdown]
# **Reading it.** Compute per rank shrinks with the slice; the communication that backward did not
# hide, and the optimizer step (which every rank repeats unless ZeRO-1 shares it), do not. The
# committed numbers come from a 2-core machine (its load, before and after, is printed above): 4 ranks
# share 2 cores, so that row measures ranks waiting for a core as much as MPI.
#
# A message of $n$ bytes costs about $T(n) = \alpha + n/\beta$: a fixed latency $\alpha$ (waking up the
# peers, handshakes) plus the bytes over the bandwidth $\beta$. A plain least-squares line through the
# measured points is dominated by the largest messages (theirs are the largest seconds): one slow
# large all-reduce moves its intercept far from the measured time of the smallest message (an
# earlier run on this machine gave a negative one). The fit here minimises
# the **relative** error instead, so each size counts alike; the table puts its predictions beside
# the measurements.

# %%
if bench is not None and bench.get("allreduce_fit"):
    fit, points = bench["allreduce_fit"], bench["allreduce_by_size"]
    figure = plots.plot_allreduce_fit(points, fit["latency_seconds"], fit["bandwidth_bytes_per_second"], fit["ranks"])
    latency, bandwidth = distributed.fit_latency_bandwidth([p["bytes"] for p in points], [p["seconds"] for p in points])
    straight = np.polyfit([p["bytes"] for p in points], [p["seconds"] for p in points], 1)[1]
    link_latency, link_bandwidth = distributed.ring_link_from_fit(latency, bandwidth, fit["ranks"])
    for p in points:
        predicted = latency + p["bytes"] / bandwidth
        print(f"{p['bytes']:>9} bytes: measured {1e6 * p['seconds']:8.1f} µs, fit {1e6 * predicted:8.1f} µs "
              f"({predicted / p['seconds'] - 1:+.0%})")
    print(f"fit on {fit['ranks']} ranks: {1e6 * latency:.1f} µs + bytes / {bandwidth / 1e9:.2f} GB/s "
          f"(a plain least-squares intercept would say {1e6 * straight:.0f} µs);  "
          f"per ring link: α = {1e6 * link_latency:.1f} µs, β = {link_bandwidth / 1e9:.2f} GB/s")

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
# A synchronous step whose communication overlaps a share $o$ of its compute (backward, bucket by
# bucket: backward is about $4P$ of the $6P$ FLOPs per token, so $o \approx 2/3$; $o = 0$ without
# buckets) exposes only what does not fit:
#
# $$T_{\text{step}} = \frac{|B|}{p}\, t_{\text{example}}
#   + \max\Big(0,\ T_{\text{ring}}(p, 4P) - o\,\frac{|B|}{p}\, t_{\text{example}}\Big),
#   \qquad \text{efficiency} = \frac{\frac{|B|}{p}\, t_{\text{example}}}{T_{\text{step}}}
#   = \frac{\text{speed-up over one worker}}{p}.$$
#
# (This is the ideal: the last bucket, the first layer's, cannot leave before backward ends, and the
# network and the processor compete for memory bandwidth. Between ranks on one machine MPI moves the
# bytes through shared memory with copies made by the ranks' own cores: with one core per rank and none
# to spare, overlap hides nothing there, as the README measures, where a network card or a GPU's copy
# engine moves them without the processor.)
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
BACKWARD_SHARE = 4 / 6  # the share of a step's compute that buckets can hide communication behind
EPOCH = 10e6
WORKERS = [8, 16, 32, 64, 128, 256, 512, 1024]
BATCHES = [512, 2048, 8192, 32768, 65536]


def predict(p, b, overlap, **network):
    return distributed.predict_data_parallel_step(PARAMETERS, p, b, seconds_per_example=SECONDS_PER_EXAMPLE,
                                                  overlap=overlap, **{**NETWORK, **network})


predictions = {(p, b): predict(p, b, 0.0) for p in WORKERS for b in BATCHES if b >= p}
overlapped = {(p, b): predict(p, b, BACKWARD_SHARE) for p in WORKERS for b in BATCHES if b >= p}
print(f"t_example = {1e3 * SECONDS_PER_EXAMPLE:.1f} ms; one all-reduce of {4 * PARAMETERS / 1e9:.2f} GB: "
      f"{1e3 * predictions[(8, 512)]['allreduce_seconds']:.0f} ms on 8 workers, "
      f"{1e3 * predictions[(1024, 65536)]['allreduce_seconds']:.0f} ms on 1024")
for title, table in (("no overlap", predictions), ("overlap with backward", overlapped)):
    print(f"\nefficiency (%), {title}" + "".join(f"{f'batch {b}':>12}" for b in BATCHES))
    for p in WORKERS:
        cells = "".join(f"{100 * table[(p, b)]['efficiency']:>12.0f}" if (p, b) in table else f"{'-':>12}"
                        for b in BATCHES)
        print(f"{p:>5} workers{' ' * (len(title) + 2)}" + cells)
bert = overlapped[(1024, 65536)]
print(f"\nBERT-Large, batch 64K, 1024 workers: compute {1e3 * bert['compute_seconds']:.0f} ms, all-reduce "
      f"{1e3 * bert['allreduce_seconds']:.0f} ms, exposed {1e3 * bert['exposed_seconds']:.0f} ms with overlap "
      f"({100 * bert['efficiency']:.0f} % efficiency; {100 * predictions[(1024, 65536)]['efficiency']:.0f} % without)")
# where the overlap stops hiding the communication: the most workers whose all-reduce still fits in backward
for b in BATCHES:
    hidden = [p for p in range(1, b + 1) if predict(p, b, BACKWARD_SHARE)["exposed_seconds"] == 0.0]
    print(f"batch {b:>6}: all communication hidden up to {max(hidden) if hidden else 0} workers "
          f"({b / max(hidden) if hidden else float('nan'):.0f} sequences each)")
figure = plots.plot_predicted_scaling(WORKERS, BATCHES, overlapped, EPOCH,
                                      title="BERT-Large on paper, overlap with backward: 100 Gb/s ring, 5 µs, "
                                            "50 TFLOP/s per GPU")

# %% [markdown]
# ## Try it: the network, the batch and the overlap
#
# Move the link's bandwidth and latency, the global batch and the share of the compute that can hide
# the all-reduce (0: the whole gradient after backward; 4/6: buckets during backward) and watch where
# the efficiency falls (static render: the defaults above, 100 Gb/s, 5 µs, batch 64K, overlap 4/6).

# %%
figure = classroom.cost_model_view(bandwidth_gbps=100.0, latency_us=5.0, batch=65536, overlap=BACKWARD_SHARE)

# %%
classroom.sliders(classroom.cost_model_view, bandwidth_gbps=(10.0, 800.0, 10.0, 100.0),
                  latency_us=(1.0, 50.0, 1.0, 5.0), batch=([512, 2048, 8192, 32768, 65536], 65536),
                  overlap=(0.0, 1.0, 0.05, 0.65))

# %% [markdown]
# **Why large batches are what make this scale.** The all-reduce costs about the same whatever the
# batch and the number of workers (the ring's bandwidth term is nearly independent of $p$, and its
# latency term is still small at 1024). What changes is the compute it is set against:
# $\frac{|B|}{p}\, t_{\text{example}}$. At batch 512 on 1024 workers there is not even one sequence
# per worker; at 64K each computes 64. Overlap helps exactly while the all-reduce fits inside
# backward: past the number of workers printed for each batch, every extra worker shrinks backward
# but not the all-reduce, and the exposed part grows. Put the other way, an epoch has $D/|B|$ steps
# and therefore $D/|B|$ all-reduces: a larger batch sends proportionally fewer gradients per epoch,
# which is what lets hundreds of workers stay busy. Whether the optimizer keeps a large batch
# *accurate* is another question, the one notebook 6 measured on MNIST: there no optimizer moved the
# critical batch size, and LARS, not LAMB, was the best from batch 2048 up. LAMB's own claim is for
# BERT at 32K to 64K (76 minutes on TPUs with a much faster interconnect than this one); on paper
# above it is only the communication that is modelled.
#
# ## Exercises
#
# 1. At batch 32K and without overlap, how many workers can BERT-Large use before the predicted
#    efficiency drops below 50 %? Read it off the table, then solve
#    $\frac{|B|}{p}t_{\text{example}} = T_{\text{ring}}(p)$ for $p$.
# 2. Send 16-bit gradients (`bytes_per_value=2`) and use a 400 Gb/s network. Which cells of the table
#    change most, and why does the latency term start to matter at 1024 workers?
# 3. With the fit of your own machine (`link_latency`, `link_bandwidth` above), predict the MLP's
#    all-reduce at 2 and 4 ranks and compare with the measured exposed communication. Where does the
#    model fail on a machine whose ranks share 2 cores?
#
# ## Solutions

# %%
# 1. Efficiency >= 50 % while compute >= all-reduce: (B/p)·t >= T_ring(p) ≈ 2·4P/β (the latency is small).
ring = 2 * 4 * PARAMETERS / NETWORK["bandwidth"]
print(f"1. p <= B·t / T_ring = {32768 * SECONDS_PER_EXAMPLE / ring:.0f} workers at batch 32K")
# 2. Half the bytes, four times the bandwidth: the all-reduce is 8 times faster; efficiency rises most where it was low.
for p in (256, 1024):
    fast = predict(p, 8192, 0.0, bandwidth=400e9 / 8, bytes_per_value=2)
    print(f"2. batch 8K, {p} workers: {100 * predictions[(p, 8192)]['efficiency']:.0f} % -> "
          f"{100 * fast['efficiency']:.0f} %; "
          f"latency part {1e3 * 2 * (p - 1) * 5e-6:.1f} ms of {1e3 * fast['allreduce_seconds']:.1f} ms")
# 3. The model against the measurement of the MLP's gradient (when a measurement was read above).
if bench is not None and bench.get("allreduce_fit"):
    for run in bench["runs"]:
        if run["model"] == "mlp" and run["mode"] == "plain" and run["ranks"] > 1:
            bytes_ = run["traffic_bytes_per_step"]["gradient_allreduce"]
            model = distributed.ring_allreduce_seconds(bytes_, run["ranks"], link_bandwidth, link_latency)
            print(f"3. {run['ranks']} ranks: ring model {1e3 * model:.2f} ms for the whole gradient; measured exposed "
                  f"communication {1e3 * run['exposed_communication_seconds']:.2f} ms")
    print("   More ranks than cores: a rank waits for a core as well as for the network, "
          "which no link model describes.")

# %% [markdown]
# ## Summary
#
# - $N$ workers each compute the gradient of their slice; the flat gradient buffer is summed over the
#   ranks in buckets, each sent as soon as backward has finished it, with the step's status riding in
#   the last: one collective per bucket and nothing else. The run equals one process's to float32
#   rounding (checked above).
# - An all-reduce costs a latency per message plus bytes over bandwidth; the ring algorithm sends
#   $2\frac{p-1}{p}$ times the gradient's bytes whatever the number of workers. Fit the latency on the
#   small messages' terms (relative error), not by a line the large messages dominate.
# - ZeRO-1 divides $m$ and $v$ by $N$ and moves the same bytes as plain data parallelism
#   (reduce-scatter + all-gather = all-reduce); Adam shards for free, LAMB and LARS add one all-reduce
#   of two numbers per layer.
# - A step's compute shrinks as $|B|/p$ while its all-reduce does not; overlap hides it only while it
#   fits inside backward. A large batch is what keeps hundreds of workers busy; whether it stays
#   accurate depends on the problem and the optimizer (notebook 6).
