#!/usr/bin/env bash
# A conv model nndl trained loads into torch.nn.Conv2d / MaxPool2d / Linear as it is (PyTorch's
# layouts: weights [F x C x k x k], a dense layer after a conv one reads (channel, row, column)) and
# gives the same predictions on the 10,000 test images; its feature maps equal the stored ones. PyTorch
# (Debian's python3-torch) is only the reference here.
. "$(dirname "$0")/lib.sh"
need_mnist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=/usr/bin/python3
$PY -c "import torch" 2>/dev/null || { fail "PyTorch is not installed (tools/install-deps installs python3-torch)"; finish; exit 1; }
run=$tmp/c.h5
mpi -n 2 "$NNDL_TRAIN" --layers conv:8x5x5,pool:2x2,conv:12x3x3,pool:2x2,dense:40,dense:10 --act relu \
  --cost log-likelihood --init network3 --eta 0.05 --epochs 1 --train-samples 3000 --probe 50 --probe-conv 5 \
  --data "$NNDL_TEST_DATA" --out "$run" --no-progress >"$tmp/out" 2>&1 && pass "a conv net trained on 2 ranks" \
  || { fail "training: $(tail -3 "$tmp/out")"; finish; exit 1; }
"$NNDL_EVAL" "$run" --split test >"$tmp/eval.out" 2>&1 || fail "nndl-eval: $(cat "$tmp/eval.out")"
$PY - "$run" "$NNDL_TEST_DATA" <<'PYEOF' >"$tmp/py.out" 2>&1 && pass "$(tail -1 "$tmp/py.out")" || fail "torch: $(tail -15 "$tmp/py.out")"
import gzip, os, sys, h5py, numpy as np, torch
torch.set_num_threads(1)
f = h5py.File(sys.argv[1], "r")
def idx(name):
    p = os.path.join(sys.argv[2], name)
    data = open(p, "rb").read() if os.path.exists(p) else gzip.open(p + ".gz").read()
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(dims)
layers, K = [], len(f["model"])
for k in range(1, K + 1):
    g = f[f"model/layer_{k}"]
    kind = g.attrs["kind"].decode() if isinstance(g.attrs["kind"], bytes) else g.attrs["kind"]
    act = g.attrs["activation"]
    act = act.decode() if isinstance(act, bytes) else act
    w, b = torch.from_numpy(g["weights"][...]), torch.from_numpy(g["biases"][...])
    if kind == "conv":
        F, C, kh, kw = w.shape
        m = torch.nn.Conv2d(C, F, kh)
        assert int(g.attrs["kernel"]) == kh
        pool = int(g.attrs["pool"])
    else:
        if k > 1 and layers and not isinstance(layers[-1], torch.nn.Flatten) and f"model/layer_{k-1}" in f and \
                (f[f"model/layer_{k-1}"].attrs["kind"] in (b"conv", "conv")):
            layers.append(torch.nn.Flatten())
        m = torch.nn.Linear(w.shape[1], w.shape[0])
        pool = 1
    with torch.no_grad():
        m.weight.copy_(w); m.bias.copy_(b)
    layers.append(m)
    if pool > 1: layers.append(torch.nn.MaxPool2d(pool))
    if act == "relu": layers.append(torch.nn.ReLU())
    elif act == "sigmoid": layers.append(torch.nn.Sigmoid())
    elif act == "tanh": layers.append(torch.nn.Tanh())
net = torch.nn.Sequential(*layers).eval()
x = torch.from_numpy(idx("t10k-images-idx3-ubyte").reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
y = idx("t10k-labels-idx1-ubyte").astype(np.int64)
with torch.no_grad():
    pred = net(x).argmax(1).numpy()
conf = np.zeros((10, 10), np.int64)
np.add.at(conf, (y, pred), 1)
mine = f["eval/test/confusion"][...]
diff = int(np.abs(conf - mine).sum()) // 2
assert diff == 0, f"{diff} of 10000 test predictions differ from nndl's (torch accuracy {np.trace(conf) / 1e4})"
# the stored feature maps of conv layer 1 on the first probes = torch's, at the last snapshot
probe = f["activations/indices"][...][: f["activations/layer_1"].shape[1]]
xtr = torch.from_numpy(idx("train-images-idx3-ubyte")[probe].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
with torch.no_grad():
    maps = net[:3](xtr).numpy()  # conv, pool, act
stored = f["activations/layer_1"][-1]
err = float(np.abs(maps - stored).max() / max(np.abs(maps).max(), 1e-30))
assert stored.shape == maps.shape and err < 1e-5, (stored.shape, maps.shape, err)
print(f"torch.nn.Conv2d/MaxPool2d/Linear with nndl's weights: the same 10,000 test predictions "
      f"(accuracy {np.trace(conf) / 1e4:.4f}); layer 1 feature maps within {err:.1e} of the stored ones")
PYEOF
finish
