"""The PyTorch reference for tools/bench/run: the same nets, costs and hyperparameters as nndl, a
plain loop over pre-loaded float32 tensors. Prints one JSON object per measured epoch.

  python3 torch_ref.py CONFIG --data DIR [--threads T] [--blas-threads B] [--samples N] [--reps R]
  python3 torch_ref.py CONFIG --data DIR --ddp 2 ...     DDP with the gloo backend, 2 processes

CONFIG is A, B, C or D (tools/bench/run lists them). PyTorch is only the yardstick: nndl does not use it.
--threads sets torch.set_num_threads; --blas-threads (default: the same) sets OPENBLAS_NUM_THREADS before
torch loads: Debian's torch calls OpenBLAS for its matrix products, and torch.set_num_threads(1) alone
leaves OpenBLAS on every core (measured: 153% CPU on config C). 0 leaves OpenBLAS at its default.
"""
import argparse
import gzip
import json
import os
import sys
import time

CONFIGS = {
    "A": dict(sizes=[784, 30, 10], act="sigmoid", cost="quadratic", batch=10, eta=3.0, l2=0.0),
    "B": dict(sizes=[784, 100, 10], act="sigmoid", cost="cross-entropy", batch=10, eta=0.5, l2=5.0),
    "C": dict(sizes=[784, 1024, 1024, 10], act="relu", cost="log-likelihood", batch=128, eta=0.1, l2=0.0),
    "D": dict(sizes=[784, 10, 3, 10], act="sigmoid", cost="quadratic", batch=10, eta=3.0, l2=0.0),
    # the book's chapter 6 (network3.py): two conv-pool layers, then fully connected ones
    "E": dict(layers="conv:20x5x5,pool:2x2,conv:40x5x5,pool:2x2,dense:100,dense:10", act="sigmoid",
              cost="log-likelihood", batch=10, eta=0.1, l2=0.0),
    "F": dict(layers="conv:20x5x5,pool:2x2,conv:40x5x5,pool:2x2,dense:1000,dense:1000,dense:10", act="relu",
              cost="log-likelihood", batch=10, eta=0.03, l2=0.0, dropout=0.5),
}


def idx(path):
    op = open if os.path.exists(path) else gzip.open
    data = op(path if os.path.exists(path) else path + ".gz", "rb").read()
    import numpy as np
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def build_layers(cfg, torch):
    """A conv net from nndl's --layers spec: Conv2d (valid, stride 1), MaxPool2d, Linear; dropout (nndl's
    --dropout) on the outputs of the hidden dense layers."""
    nn = torch.nn
    act = (lambda: nn.Sigmoid()) if cfg["act"] == "sigmoid" else (lambda: nn.ReLU())
    toks, layers, c, hw, flat = cfg["layers"].split(","), [], 1, 28, None
    for i, t in enumerate(toks):
        kind, arg = t.split(":")
        if kind == "conv":
            f, k, _ = map(int, arg.split("x"))
            conv = nn.Conv2d(c, f, k)
            nn.init.normal_(conv.weight, 0.0, 1.0 / (c * k * k) ** 0.5)  # nndl's --init nielsen
            nn.init.normal_(conv.bias, 0.0, 1.0)
            layers.append(conv)
            c, hw = f, hw - k + 1
            pool = i + 1 < len(toks) and toks[i + 1].startswith("pool:")
            if not pool:
                layers.append(act())
        elif kind == "pool":
            p = int(arg.split("x")[0])
            layers += [nn.MaxPool2d(p), act()]
            hw //= p
        else:
            n = int(arg)
            if flat is None:
                layers.append(nn.Flatten())
                flat = c * hw * hw
            lin = nn.Linear(flat, n)
            nn.init.normal_(lin.weight, 0.0, 1.0 / flat ** 0.5)
            nn.init.normal_(lin.bias, 0.0, 1.0)
            layers.append(lin)
            if i + 1 < len(toks):
                layers.append(act())
                if cfg.get("dropout"):
                    layers.append(nn.Dropout(cfg["dropout"]))
            flat = n
    return nn.Sequential(*layers)


def build(cfg, torch):
    if "layers" in cfg:
        return build_layers(cfg, torch)
    nn = torch.nn
    layers = []
    s = cfg["sizes"]
    for i in range(len(s) - 1):
        lin = nn.Linear(s[i], s[i + 1])
        nn.init.normal_(lin.weight, 0.0, 1.0 / s[i] ** 0.5)  # nndl's --init nielsen
        nn.init.normal_(lin.bias, 0.0, 1.0)
        layers.append(lin)
        last = i == len(s) - 2
        if not last:
            layers.append(nn.Sigmoid() if cfg["act"] == "sigmoid" else nn.ReLU())
        elif cfg["cost"] != "log-likelihood":
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def loss_fn(cfg, torch, out, y, y1h):
    if cfg["cost"] == "quadratic":  # the book's C = 1/2 ||a - y||^2, mean over the batch
        return 0.5 * ((out - y1h) ** 2).sum() / out.shape[0]
    if cfg["cost"] == "cross-entropy":
        return torch.nn.functional.binary_cross_entropy(out, y1h, reduction="sum") / out.shape[0]
    return torch.nn.functional.cross_entropy(out, y)  # softmax + log-likelihood, mean


def main():
    p = argparse.ArgumentParser()
    p.add_argument("config", choices=sorted(CONFIGS))
    p.add_argument("--data", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--blas-threads", type=int, default=-1)
    p.add_argument("--samples", type=int, default=50000)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--ddp", type=int, default=0, help="processes for DistributedDataParallel (gloo)")
    p.add_argument("--rank", type=int, default=-1, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.ddp and a.rank < 0:  # the launcher: start the processes, relay rank 0's output
        import subprocess
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29500 + os.getpid() % 1000))
        procs = [subprocess.Popen([sys.executable] + sys.argv + ["--rank", str(r)], env=env,
                                  stdout=subprocess.PIPE if r else None) for r in range(a.ddp)]
        sys.exit(max(pr.wait() for pr in procs))
    blas = a.threads if a.blas_threads < 0 else a.blas_threads
    if blas > 0:
        os.environ["OPENBLAS_NUM_THREADS"] = str(blas)
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    cfg = CONFIGS[a.config]
    shape = (a.samples, 1, 28, 28) if "layers" in cfg else (a.samples, 784)
    x = torch.from_numpy(idx(os.path.join(a.data, "train-images-idx3-ubyte"))[:a.samples].reshape(shape)
                         .astype("float32") / 255.0)
    y = torch.from_numpy(idx(os.path.join(a.data, "train-labels-idx1-ubyte"))[:a.samples].astype("int64"))
    y1h = torch.nn.functional.one_hot(y, 10).float()
    net = build(cfg, torch)
    world, rank = max(a.ddp, 1), max(a.rank, 0)
    if a.ddp:
        import torch.distributed as dist
        dist.init_process_group("gloo", rank=rank, world_size=world)
        net = torch.nn.parallel.DistributedDataParallel(net)
    weights = [q for n_, q in net.named_parameters() if n_.endswith("weight")]
    biases = [q for n_, q in net.named_parameters() if n_.endswith("bias")]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": cfg["l2"] / a.samples},  # the book's lambda / n
                           {"params": biases, "weight_decay": 0.0}], lr=cfg["eta"])
    B = cfg["batch"]
    for rep in range(a.reps):
        perm = torch.randperm(a.samples)
        t0 = time.perf_counter()
        for s in range(0, a.samples, B):
            idx_b = perm[s:s + B]
            lo, hi = len(idx_b) * rank // world, len(idx_b) * (rank + 1) // world  # this process's shard
            xb, yb, y1 = x[idx_b[lo:hi]], y[idx_b[lo:hi]], y1h[idx_b[lo:hi]]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(cfg, torch, net(xb), yb, y1)
            loss.backward()
            opt.step()
        secs = time.perf_counter() - t0
        if rank == 0:
            print(json.dumps({"config": a.config, "threads": a.threads, "blas_threads": blas, "ddp": a.ddp, "samples": a.samples,
                              "seconds": secs, "samples_per_s": a.samples / secs}), flush=True)
    if a.ddp:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
