"""The conv layers alone in PyTorch, for tools/bench/run: forward and backward (the gradient) of the book's
two conv-pool layers (conv 20x5x5, pool 2x2, conv 40x5x5, pool 2x2; sigmoid) and a 640-10 softmax on a
batch, one thread, the same layers as `nndl-bench-micro convs`. PyTorch's CPU convolutions are oneDNN's
(aten::mkldnn_convolution), so this is oneDNN's time plus PyTorch's per-operator overhead.
  python3 conv_ref.py BATCH REPS            prints one JSON object
"""
import json
import os
import sys
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"
import torch  # noqa: E402

torch.set_num_threads(1)
batch, reps = int(sys.argv[1]), int(sys.argv[2])
nn = torch.nn
net = nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Sigmoid(), nn.Conv2d(20, 40, 5), nn.MaxPool2d(2),
                    nn.Sigmoid(), nn.Flatten(), nn.Linear(640, 10))
x, y = torch.rand(batch, 1, 28, 28), torch.arange(batch) % 10
ts = []
for r in range(-20, reps):
    t0 = time.perf_counter()
    net.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    if r >= 0:
        ts.append(time.perf_counter() - t0)
ts.sort()
s = ts[len(ts) // 2]
# the convolutions' own time (oneDNN's forward and backward kernels), from PyTorch's profiler
from torch.profiler import ProfilerActivity, profile  # noqa: E402
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for r in range(reps):
        net.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
conv_us = sum(e.self_cpu_time_total for e in prof.key_averages()
              if e.key in ("aten::mkldnn_convolution", "aten::convolution_backward")) / reps
print(json.dumps({"convs_batch": batch, "convs_us_per_step": 1e6 * s, "convs_samples_per_s": batch / s,
                  "onednn_conv_us_per_step": conv_us, "torch_mkldnn": torch.backends.mkldnn.is_available()}))
