"""Reference point 2: torch.matmul on the same problems as our ops.matmul calls.

Reads one JSON job on stdin:
  {"threads": n, "timing": {"minReps", "maxReps", "budget"}, "maxRunSeconds": s,
   "cases": [{"id", "a": [rows, cols], "b": [rows, cols], "transA", "transB", "dtype": "f32"|"bf16"}]}
and prints {"version", "blas", "threads", "results": [{"id", "gflops", "median", "reps"} | ...]}.
a and b are the stored shapes; the product is (a.T if transA else a) @ (b.T if transB else b).

Timing follows timing.js: one warm-up call, calls to fill the budget, the median. A problem whose
single call would exceed maxRunSeconds (bf16 matmul is very slow on CPUs without bf16 units) is
timed on a slice of its rows instead and reported with "probe": true.
"""
import json
import statistics
import sys
import time

import torch

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def operand(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) - 0.5).to(dtype)


def product(a, b, trans_a, trans_b):
    return torch.matmul(a.t() if trans_a else a, b.t() if trans_b else b)


def seconds(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_median(fn, timing):
    first = seconds(fn)
    reps = max(timing["minReps"], min(timing["maxReps"], int(timing["budget"] / max(first, 1e-9))))
    return statistics.median(seconds(fn) for _ in range(reps)), reps


def rows_slice(a, trans_a, rows):
    """The first `rows` rows of op(a), stored like a (contiguous, so the layout matches)."""
    return (a[:, :rows] if trans_a else a[:rows]).contiguous()


def run_case(c, timing, max_run):
    dtype = DTYPES[c["dtype"]]
    a, b = operand(c["a"], dtype, 1), operand(c["b"], dtype, 2)
    m = c["a"][1] if c["transA"] else c["a"][0]
    k = c["a"][0] if c["transA"] else c["a"][1]
    n = c["b"][0] if c["transB"] else c["b"][1]
    flops = 2.0 * m * n * k

    # Estimate from a ~1 GFLOP slice first when the full call could be slow.
    if flops > 4e9:
        rows = max(64, min(m, int(1e9 / (2.0 * n * k))))
        part = rows_slice(a, c["transA"], rows)
        product(part, b, c["transA"], c["transB"])
        t = min(seconds(lambda: product(part, b, c["transA"], c["transB"])) for _ in range(2))
        rate = 2.0 * rows * n * k / t
        if flops / rate > max_run:
            return {"id": c["id"], "gflops": round(rate / 1e9, 2), "probe": True, "probeRows": rows}

    median, reps = time_median(lambda: product(a, b, c["transA"], c["transB"]), timing)
    return {"id": c["id"], "gflops": round(flops / median / 1e9, 2), "median": median, "reps": reps}


def main():
    job = json.load(sys.stdin)
    torch.set_num_threads(job["threads"])
    config = torch.__config__.show()
    blas = next((p.split("=", 1)[1] for p in config.replace(",", "\n").split() if p.startswith("BLAS_INFO=")), "unknown")
    results = []
    for c in job["cases"]:
        print(f"  torch {c['id']}", file=sys.stderr, flush=True)
        try:
            results.append(run_case(c, job["timing"], job["maxRunSeconds"]))
        except Exception as e:  # one failing case (e.g. out of memory) must not lose the others
            results.append({"id": c["id"], "error": str(e)})
    print(json.dumps({"version": torch.__version__, "blas": blas, "threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
