"""tools/bench/table.py RAW.jsonl OUT.json SAMPLES REPS: the benchmark's table from run's raw records."""
import json
import statistics as st
import sys

raw = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
out_json, samples, reps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
BATCH = {"A": 10, "B": 10, "C": 128, "D": 10, "E": 10, "F": 10}
NAMES = {"A": "784-30-10 sigmoid quadratic b10", "B": "784-100-10 sigmoid CE L2 b10",
         "C": "784-1024-1024-10 ReLU softmax b128", "D": "784-10-3-10 sigmoid quadratic b10",
         "E": "conv20-pool-conv40-pool-100-10 sigmoid b10", "F": "conv-pool x2-1000-1000-10 ReLU dropout b10"}
# the conv nets' training FLOPs per sample, counted: 3 x the forward multiply-adds x 2, less the first layer's
# input gradient (nobody computes it). Forward MACs: conv1 24*24*20*25 = 288,000, conv2 8*8*40*500 = 1,280,000,
# then the dense layers (E 640*100 + 100*10; F 640*1000 + 1000*1000 + 1000*10).
CONV_FLOPS = {"E": 6 * 1_633_000 - 2 * 288_000, "F": 6 * 3_218_000 - 2 * 288_000}

peak = next(r["sgemm_gflops"] for r in raw if "sgemm_gflops" in r)
gemm = {r["config"]: r for r in raw if "gemm_samples_per_s" in r}
allred = {}
for r in raw:
    if "allreduce_us" in r:
        allred.setdefault(r["config"], []).append(r["allreduce_us"])


def spread(v):
    return {"median": st.median(v), "min": min(v), "max": max(v), "n": len(v)}


rows = []
configs = [c for c in "ABCDEF" if any(r.get("config") == c and "samples_per_s" in r for r in raw)]
for c in configs:
    flops_per_sample = gemm[c]["flops_per_step"] / BATCH[c] if c in gemm else CONV_FLOPS[c]
    impls = []
    for mode, suffix in (("default", ""), ("rows", " rows"), ("allreduce", " mpi"), ("reproducible", " repro")):
        for np_ in (1, 2):
            rs = [r for r in raw if r.get("impl") == "nndl" and r.get("config") == c and r.get("np") == np_
                  and r.get("mode", "default") == mode]
            if rs:
                impls.append((f"nndl -np {np_}{suffix}", [r["samples_per_s"] for r in rs], max(r["rss_kb"] for r in rs),
                              np_))
    rs = [r for r in raw if r.get("impl") == "nndl" and r.get("config") == c and r.get("mode") == "pair"]
    if rs:
        impls.append(("2 x nndl -np 1", [r["samples_per_s"] for r in rs], None, 2))
    for label, sel in (("torch 1 thread", lambda r: r["threads"] == 1 and r.get("blas_threads", 1) == 1 and not r["ddp"]),
                       ("torch 2 threads", lambda r: r["threads"] == 2 and not r["ddp"]),
                       ("torch 1t+BLAS dflt", lambda r: r["threads"] == 1 and r.get("blas_threads") == 0 and not r["ddp"]),
                       ("torch DDP gloo x2", lambda r: r["ddp"] == 2)):
        rs = [r for r in raw if r.get("impl") == "torch" and r.get("config") == c and sel(r)]
        if rs:
            impls.append((label, [r["samples_per_s"] for r in rs], None, 1 if label == "torch 1 thread" else 2))
    torch_best = max((st.median(v) for lab, v, _, _ in impls if lab.startswith("torch")), default=None)
    torch_1 = next((st.median(v) for lab, v, _, _ in impls if lab == "torch 1 thread"), None)
    ar = st.median(allred[c]) if c in allred else None
    default = {np_: st.median(v) for lab, v, _, np_ in impls if lab == f"nndl -np {np_}"}
    for lab, v, rss, np_ in impls:
        sps = st.median(v)
        row = {"config": c, "net": NAMES[c], "impl": lab, "samples_per_s": spread(v),
               "ratio_to_torch_best": sps / torch_best if torch_best else None,
               "ratio_to_torch_1_thread": sps / torch_1 if torch_1 else None,
               "gflops": sps * flops_per_sample / 1e9,
               "pct_of_sgemm_peak": 100 * sps * flops_per_sample / 1e9 / (peak * np_),
               "pct_of_gemm_limit": 100 * sps / (gemm[c]["gemm_samples_per_s"] * np_) if c in gemm else None,
               "allreduce_share": (ar * 1e-6 * sps / BATCH[c]) if (ar and lab == "nndl -np 2") else None,
               "ratio_to_default_mode": sps / default[np_] if lab.endswith("repro") and np_ in default else None,
               "peak_rss_mb_per_rank": rss / 1024 if rss else None}
        rows.append(row)
steps = {}
for r in raw:
    if "overlap_us_per_step" in r:
        steps.setdefault(r["config"], []).append(r)
pss = {r["pss_np"]: r["pss_kb_sum"] for r in raw if "pss_np" in r}

print(f"\nsingle-core cblas_sgemm peak: {peak:.1f} GFLOP/s; {samples} training samples per epoch; "
      f"medians of {reps} launch(es) [min-max]")
if gemm:
    print("GEMMs alone of one step, 1 core: " + ", ".join(
        f"{c} {gemm[c]['gemm_us_per_step']:.3g} us ({gemm[c]['gemm_samples_per_s']:,.0f} samples/s)" for c in "ABCD"
        if c in gemm))
if allred:
    print("MPI_Allreduce of the gradient, 2 ranks (median of launches [min-max]): " + ", ".join(
    f"{c} {st.median(allred[c]):.3g} us [{min(allred[c]):.3g}-{max(allred[c]):.3g}]" for c in "ABCD" if c in allred))
coh = [r for r in raw if "coherence_kb" in r]
if coh:
    m = {k: st.median(r[k] for r in coh) for k in ("own_us", "after_read_us", "after_write_us",
                                                  "after_read_streamed_us", "barrier_us")}
    print(f"2 ranks, rank 0 rewriting {coh[0]['coherence_kb']} KB of node-shared memory (medians of launches): "
          f"lines only it holds {m['own_us']:.3g} us, lines rank 1 has just read {m['after_read_us']:.3g} us "
          f"({m['after_read_streamed_us']:.3g} us with non-temporal stores), lines rank 1 has just written "
          f"{m['after_write_us']:.3g} us; MPI_Barrier {m['barrier_us']:.3g} us")
convs = {}
for r in raw:
    if "convs_us_per_step" in r:
        convs.setdefault(r["impl"], []).append(r)
if convs:
    med = {k: st.median(x["convs_us_per_step"] for x in v) for k, v in convs.items()}
    line = f"E's conv layers alone (2 conv-pool layers + 640-10 softmax, forward + backprop, batch 10, 1 core): " \
           f"nndl (direct AVX-512 kernels, or im2col + sgemm) {med['nndl']:.4g} us"
    if "torch" in med:
        one = st.median(x["onednn_conv_us_per_step"] for x in convs["torch"])
        line += f", PyTorch {med['torch']:.4g} us, of which oneDNN's convolution kernels {one:.4g} us " \
                f"(nndl {med['torch'] / med['nndl']:.2f}x faster; {one / med['nndl']:.2f}x oneDNN's kernels alone)"
    print(line)
if steps:
    print("2 ranks, blocking MPI_Allreduce vs buckets overlapping backprop (--overlap), alternating in one process, "
          "us per step (medians of launches): " + ", ".join(
              f"{c} {st.median(x['blocking_us_per_step'] for x in v):.4g} vs {st.median(x['overlap_us_per_step'] for x in v):.4g}"
              f" ({st.median(x['overlap_speedup'] for x in v):.2f}x)" for c, v in sorted(steps.items())))
hdr = f"{'cfg':3} {'implementation':18} {'samples/s':>10} {'[min-max]':>21} {'x torch best':>12} {'x torch 1t':>10} " \
      f"{'GFLOP/s':>8} {'% peak':>7} {'% GEMM limit':>12} {'allreduce':>9} {'RSS MB':>7}"
print(hdr)
print("-" * len(hdr))
for r in rows:
    s = r["samples_per_s"]
    f = lambda v, fmt: (fmt % v) if v is not None else "-"  # noqa: E731
    rng = "[{:,.0f}-{:,.0f}]".format(s["min"], s["max"])
    print(f"{r['config']:3} {r['impl']:18} {s['median']:>10,.0f} {rng:>21} "
          f"{f(r['ratio_to_torch_best'], '%.2f'):>12} {f(r['ratio_to_torch_1_thread'], '%.2f'):>10} "
          f"{r['gflops']:>8.2f} {r['pct_of_sgemm_peak']:>6.1f}% {f(r['pct_of_gemm_limit'], '%.1f%%'):>12} "
          f"{f(100 * r['allreduce_share'] if r['allreduce_share'] is not None else None, '%.0f%%'):>9} "
          f"{f(r['peak_rss_mb_per_rank'], '%.0f'):>7}")
for r in rows:
    if r["impl"] == "2 x nndl -np 1":
        np2 = next(x for x in rows if x["config"] == r["config"] and x["impl"] == "nndl -np 2")
        np1 = next(x for x in rows if x["config"] == r["config"] and x["impl"] == "nndl -np 1")
        r["ratio_np2_to_ceiling"] = np2["samples_per_s"]["median"] / r["samples_per_s"]["median"]
        print(f"{r['config']}: -np 2 = {np2['samples_per_s']['median'] / np1['samples_per_s']['median']:.2f}x -np 1, "
              f"{100 * r['ratio_np2_to_ceiling']:.0f}% of two independent single-core runs at once "
              f"({r['samples_per_s']['median']:,.0f} samples/s: the most two cores give)")
        seq = {n: [x["samples_per_s"] for x in raw if x.get("impl") == "nndl" and x.get("config") == r["config"]
                   and x.get("mode", "default") == "default" and x.get("np") == n] for n in (1, 2)}
        pairs = [b / a for a, b in zip(seq[1], seq[2])]
        if pairs:  # launch k of -np 2 right after launch k of -np 1
            r["ratio_np2_np1_paired"] = pairs
            print(f"   -np 2 / -np 1 launch by launch: " + ", ".join(f"{v:.2f}" for v in pairs))
        each = [x["each"] for x in raw if x.get("mode") == "pair" and x.get("config") == r["config"] and "each" in x]
        if each:  # the VM's cores are not always equally fast; a synchronous step waits for the slower
            c0, c1 = (st.median(e[k] for e in each) for k in (0, 1))
            r["pair_each"] = [c0, c1]
            print(f"   those two runs: core 0 {c0:,.0f}, core 1 {c1:,.0f} samples/s (medians); "
                  f"-np 2 = {np2['samples_per_s']['median'] / (2 * min(c0, c1)):.2f}x twice the slower core")
repro = [r for r in rows if r["ratio_to_default_mode"]]
if repro:
    print("--reproducible against the default mode (same np): " + ", ".join(
        f"{r['config']} {r['impl'].split()[1]} {r['impl'].split()[2]} {r['ratio_to_default_mode']:.2f}x" for r in repro))
if pss:
    base = pss.get(1)
    print("sum of PSS over the ranks (config A): " + ", ".join(
        f"np {n}: {kb / 1024:.0f} MB ({kb / base:.2f}x np 1)" for n, kb in sorted(pss.items())))
json.dump({"sgemm_peak_gflops": peak, "samples": samples, "reps": reps, "gemm_limit": gemm,
           "allreduce_us": {c: spread(v) for c, v in allred.items()}, "rows": rows,
           "pss_kb_sum": pss, "overlap_steps": steps, "conv_layers": convs, "coherence": coh}, open(out_json, "w"), indent=1)
print(f"\nwritten: {out_json}")
