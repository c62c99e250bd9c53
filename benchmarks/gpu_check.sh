#!/usr/bin/env bash
# The first run on a machine with an NVIDIA GPU: one command, one JSON of results.
#
#   bash benchmarks/gpu_check.sh [results.json]      (default: benchmarks/gpu_check.json)
#
# 1. the CUDA kernels compile with NVRTC (tests/test_cuda_compile.py);
# 2. the whole test suite on the CuPy backend (LAMB_EDU_BACKEND=cupy; tests/test_gpu.py compares the
#    kernels with float64 references and a GPU training run with the CPU one);
# 3. the GPU benchmarks against PyTorch CUDA (benchmarks/bench_vs_torch.py --gpu, which also writes
#    the GPU section of benchmarks/RESULTS.md).
# Needs: pip install -e ".[gpu-check,test]" (and torch with CUDA for the comparison; timm adds its Lamb
# to it, and tests/test_torch_lamb.py checks both PyTorch LAMBs against optim.LAMB).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/gpu_check.json}"
logs="$(mktemp -d)"
export MPLBACKEND=Agg LAMB_EDU_QUICK="${LAMB_EDU_QUICK:-1}"

python -c "import cupy; print('GPUs:', cupy.cuda.runtime.getDeviceCount())" >"$logs/device.log" 2>&1
device_rc=$?
python -m pytest -q tests/test_cuda_compile.py >"$logs/compile.log" 2>&1
compile_rc=$?
grep -q skipped "$logs/compile.log" && compile_rc=5  # a skipped compile checked nothing
if [ "$device_rc" -eq 0 ]; then
    LAMB_EDU_BACKEND=cupy python -m pytest -q >"$logs/tests.log" 2>&1
    tests_rc=$?
    python benchmarks/bench_vs_torch.py --gpu >"$logs/bench.log" 2>&1
    bench_rc=$?
else  # without a GPU the suite would quietly run on NumPy: not a GPU result
    echo "no usable GPU: see device" | tee "$logs/tests.log" >"$logs/bench.log"
    tests_rc=3 bench_rc=3
fi

python - "$out" "$logs" "$device_rc" "$compile_rc" "$tests_rc" "$bench_rc" <<'PY'
import json, platform, subprocess, sys
from pathlib import Path

out, logs, *codes = sys.argv[1:]
def tail(name, lines=40):
    return Path(logs, name).read_text(errors="replace").splitlines()[-lines:]
def gpu():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"nvidia-smi unavailable: {error}"
steps = ["device", "compile", "tests", "bench"]
results = {"machine": platform.node(), "python": platform.python_version(), "gpu": gpu(),
           "passed": all(code == "0" for code in codes)}
for step, code in zip(steps, codes):
    results[step] = {"exit_code": int(code), "log_tail": tail(f"{step}.log")}
Path(out).write_text(json.dumps(results, indent=2) + "\n")
print(f"{out}: " + ", ".join(f"{step} {'ok' if code == '0' else 'FAILED'}" for step, code in zip(steps, codes)))
sys.exit(0 if results["passed"] else 1)
PY
