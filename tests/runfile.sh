#!/usr/bin/env bash
# The run file of a real `mpirun -np 2 nndl-train`, read back by C (test_runfile), by h5py and by
# h5dump; nndl-eval stores /eval; nndl-pack makes one self-contained file; a main file copied
# without its companions reads NaN, not plausible numbers.
. "$(dirname "$0")/lib.sh"
need_mnist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=/usr/bin/python3
run=$tmp/r.h5
mpi -n 2 "$NNDL_TRAIN" --sizes 784,20,10 --cost cross-entropy --init nielsen --eta 0.5 --epochs 3 \
  --train-samples 2000 --probe 300 --data "$NNDL_TEST_DATA" --out "$run" --no-progress >"$tmp/out" 2>&1 \
  && pass "training wrote $run" || { fail "training: $(cat "$tmp/out")"; finish; exit 1; }

NNDL_RUNFILE=$run "$TEST_RUNFILE" --jobs 1 >"$tmp/c.out" 2>&1 && pass "C reader: every documented name, shape and value" \
  || fail "C reader: $(tail -20 "$tmp/c.out")"

"$NNDL_EVAL" "$run" --split test >"$tmp/eval.out" 2>&1 && pass "nndl-eval" || fail "nndl-eval: $(cat "$tmp/eval.out")"
"$NNDL_EVAL" "$run" --split val --model best >>"$tmp/eval.out" 2>&1 || fail "nndl-eval --model best"

$PY - "$run" "$tmp/eval.out" <<'PYEOF' && pass "h5py: layout, values, /eval" || fail "h5py checks"
import json, sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert f.attrs["nndl_format_version"] == 2
cfg = json.loads(f.attrs["config"])
assert cfg["sizes"] == [784, 20, 10] and cfg["eta"] == 0.5 and cfg["batch"] == 10, cfg
for k in range(1, 3):
    w, b = f[f"model/layer_{k}/weights"], f[f"model/layer_{k}/biases"]
    assert w.shape == (cfg["sizes"][k], cfg["sizes"][k - 1]) and b.shape == (cfg["sizes"][k],)
    h = f[f"history/layer_{k}/weights"]
    assert h.shape == (4,) + w.shape and np.array_equal(h[-1], w[...])
    assert np.array_equal(f[f"history/layer_{k}/biases"][-1], b[...])
assert list(f["history/epoch"][:]) == [0, 1, 2, 3]
for name in ("epoch", "train_cost", "val_accuracy", "val_cost", "learning_rate", "seconds", "samples_per_s"):
    assert f["metrics/" + name].shape == (3,), name
assert np.all(np.diff(f["metrics/train_cost"][:]) < 0), "training cost falls"
a = f["activations/layer_1"]
assert a.shape == (4, 300, 20) and np.all((a[...] > 0) & (a[...] < 1)), "sigmoid activations"
assert f["activations/labels"].shape == (300,)
assert f["best"].attrs["epoch"] == int(np.argmax(f["metrics/val_accuracy"][:])) + 1
c = f["eval/test/confusion"][...]
assert c.shape == (10, 10) and c.sum() == 10000
acc = float(np.trace(c)) / c.sum()
assert abs(acc - f["eval/test"].attrs["accuracy"]) < 1e-12
assert f"accuracy {acc:.4f}" in open(sys.argv[2]).read(), "printed accuracy matches the stored matrix"
assert f["eval/val/confusion"][...].sum() == 10000
assert f["checkpoint"].attrs["epoch"] == 3
PYEOF

h5dump -H "$run" >"$tmp/dump" 2>&1 && grep -q 'DATASET "weights"' "$tmp/dump" && grep -q 'nndl_format_version' "$tmp/dump" \
  && pass "h5dump -H reads it" || fail "h5dump -H: $(head -5 "$tmp/dump")"
h5dump -d /history/layer_2/biases "$run" >/dev/null 2>&1 && pass "h5dump reads a virtual dataset" || fail "h5dump VDS"

"$NNDL_PACK" "$run" "$tmp/packed.h5" >/dev/null && pass "nndl-pack" || fail "nndl-pack"
"$NNDL_PACK" "$run" "$tmp/packed.h5" 2>"$tmp/err"; [ $? -eq 2 ] && grep -q "exists" "$tmp/err" \
  && pass "nndl-pack never overwrites" || fail "nndl-pack over an existing file"
mkdir "$tmp/alone"; cp "$tmp/packed.h5" "$tmp/alone/"; cp "$run" "$tmp/alone/copied.h5"
$PY - "$run" "$tmp/alone/packed.h5" "$tmp/alone/copied.h5" <<'PYEOF' && pass "packed file is whole alone; a bare copy reads NaN" || fail "pack/copy"
import sys, h5py, numpy as np
orig, packed, bare = (h5py.File(p, "r") for p in sys.argv[1:])
for name in ("history/layer_1/weights", "activations/layer_1", "model/layer_1/weights", "eval/test/confusion",
             "checkpoint/model/layer_2/weights"):
    assert np.array_equal(orig[name][...], packed[name][...]), name
    assert packed[name].is_virtual is False if hasattr(packed[name], "is_virtual") else True
assert packed.attrs["companion_dir"] in (b"", "", b" ", " ")
assert np.all(np.isnan(bare["history/layer_1/weights"][...])), "missing companions read as NaN"
assert bare.attrs["companion_dir"] not in (b"", ""), "the bare copy names its companion directory"
PYEOF

# --compress: the same history, gzipped
mpi -n 2 "$NNDL_TRAIN" --sizes 784,20,10 --cost cross-entropy --init nielsen --eta 0.5 --epochs 3 --train-samples 2000 \
  --probe 300 --data "$NNDL_TEST_DATA" --out "$tmp/z.h5" --compress 6 --no-progress >"$tmp/out" 2>&1
$PY - "$run" "$tmp/z.h5" <<'PYEOF' && pass "--compress 6: identical history, gzip in the snapshot files" || fail "--compress"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
assert np.array_equal(a["history/layer_1/weights"][...], b["history/layer_1/weights"][...])
h = h5py.File(sys.argv[2] + ".d/hist-000001.h5", "r")["history/layer_1/weights"]
assert h.compression == "gzip" and h.fletcher32, (h.compression, h.fletcher32)
PYEOF

# --init-from + --no-shuffle replay: an independent numpy implementation of the book's SGD, fed the
# same starting weights and the samples in file order, ends where nndl ends
$PY - "$tmp/w0.h5" <<'PYEOF'
import sys, h5py, numpy as np
r = np.random.default_rng(7)
with h5py.File(sys.argv[1], "w") as f:
    for k, (o, i) in enumerate([(30, 784), (10, 30)], 1):
        f[f"model/layer_{k}/weights"] = (r.normal(0, 1, (o, i)) / np.sqrt(i)).astype(np.float32)
        f[f"model/layer_{k}/biases"] = r.normal(0, 1, o).astype(np.float32)
PYEOF
mpi -n 3 "$NNDL_TRAIN" --sizes 784,30,10 --eta 3.0 --batch 10 --epochs 2 --train-samples 500 --init-from "$tmp/w0.h5" \
  --no-shuffle --probe 0 --data "$NNDL_TEST_DATA" --out "$tmp/replay.h5" --no-progress >"$tmp/out" 2>&1 || fail "replay run"
$PY - "$tmp/w0.h5" "$tmp/replay.h5" "$NNDL_TEST_DATA" <<'PYEOF' && pass "numpy replay of 100 SGD steps (3 ranks, quadratic cost, eta 3) agrees" || fail "numpy replay"
import gzip, os, sys, h5py, numpy as np
def idx(path):
    op = gzip.open if not os.path.exists(path) else open
    with op(path if os.path.exists(path) else path + ".gz", "rb") as f:
        data = f.read()
    nd = data[3]; dims = [int.from_bytes(data[4 + 4*i:8 + 4*i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4*nd).reshape(dims)
X = idx(os.path.join(sys.argv[3], "train-images-idx3-ubyte"))[:500].reshape(500, 784).astype(np.float64) / 255
Y = np.eye(10)[idx(os.path.join(sys.argv[3], "train-labels-idx1-ubyte"))[:500]]
w0 = h5py.File(sys.argv[1], "r"); W = [w0[f"model/layer_{k}/weights"][...].astype(np.float64) for k in (1, 2)]
B = [w0[f"model/layer_{k}/biases"][...].astype(np.float64) for k in (1, 2)]
sig = lambda z: 1 / (1 + np.exp(-z))
for epoch in range(2):
    for s in range(0, 500, 10):                     # the book's update: w -= eta/m * sum of gradients
        x, y = X[s:s+10], Y[s:s+10]
        a1 = sig(x @ W[0].T + B[0]); a2 = sig(a1 @ W[1].T + B[1])
        d2 = (a2 - y) * a2 * (1 - a2); d1 = (d2 @ W[1]) * a1 * (1 - a1)
        W[1] -= 3.0 / 10 * d2.T @ a1; B[1] -= 3.0 / 10 * d2.sum(0)
        W[0] -= 3.0 / 10 * d1.T @ x;  B[0] -= 3.0 / 10 * d1.sum(0)
out = h5py.File(sys.argv[2], "r")
for k in (1, 2):
    w = out[f"model/layer_{k}/weights"][...]
    rel = np.linalg.norm(w - W[k-1]) / np.linalg.norm(W[k-1])
    print(f"layer {k}: nndl (float32) vs numpy (float64) relative difference {rel:.2e}")
    assert rel < 1e-4, rel
PYEOF
# a conv net's run file (format 2): PyTorch's layouts, the layer attributes, histories, the probes' feature
# maps (recomputed here in numpy from the stored model and the IDX file) and the probe images; h5dump reads it
mpi -n 2 "$NNDL_TRAIN" --layers conv:4x3x3,pool:2x2,dense:12,dense:10 --act tanh --cost log-likelihood \
  --init network3 --eta 0.05 --epochs 2 --train-samples 1000 --probe 40 --probe-conv 3 --data "$NNDL_TEST_DATA" \
  --out "$tmp/conv.h5" --no-progress >"$tmp/out" 2>&1 || fail "conv run: $(tail -3 "$tmp/out")"
$PY - "$tmp/conv.h5" "$NNDL_TEST_DATA" <<'PYEOF' && pass "conv run file: shapes, attributes, history, feature maps = numpy's" || fail "conv run file"
import gzip, json, os, sys, h5py, numpy as np
def idx(path):
    data = open(path, "rb").read() if os.path.exists(path) else gzip.open(path + ".gz").read()
    dims = [int.from_bytes(data[4 + 4*i:8 + 4*i], "big") for i in range(data[3])]
    return np.frombuffer(data, np.uint8, offset=4 + 4*data[3]).reshape(dims)
f = h5py.File(sys.argv[1], "r")
t = lambda v: v.decode() if isinstance(v, bytes) else v
assert f.attrs["nndl_format_version"] == 2
cfg = json.loads(f.attrs["config"])
assert cfg["sizes"] == [] and cfg["layers"] == "conv:4x3x3,pool:2x2,dense:12,dense:10" and cfg["probe-conv"] == 3, cfg
g1, g2, g3 = (f[f"model/layer_{k}"] for k in (1, 2, 3))
assert g1["weights"].shape == (4, 1, 3, 3) and g1["biases"].shape == (4,)
assert (t(g1.attrs["kind"]), int(g1.attrs["kernel"]), int(g1.attrs["pool"]), t(g1.attrs["activation"])) == ("conv", 3, 2, "tanh")
assert g2["weights"].shape == (12, 4 * 13 * 13) and t(g2.attrs["kind"]) == "dense" and t(g2.attrs["activation"]) == "tanh"
assert g3["weights"].shape == (10, 12) and t(g3.attrs["activation"]) == "softmax"
h = f["history/layer_1/weights"]
assert h.shape == (3, 4, 1, 3, 3) and np.array_equal(h[-1], g1["weights"][...]) and not np.array_equal(h[0], h[-1])
a1, a2 = f["activations/layer_1"], f["activations/layer_2"]
assert f["activations"].attrs["probe_conv"] == 3 and a1.shape == (3, 3, 4, 13, 13) and a2.shape == (3, 40, 12), (a1.shape, a2.shape)
ind = f["activations/indices"][...]
X = idx(os.path.join(sys.argv[2], "train-images-idx3-ubyte"))[ind]
assert np.array_equal(f["activations/images"][...], X[:3]), "the probe images are the IDX file's"
x = X.astype(np.float64) / 255
W, b = g1["weights"][...].astype(np.float64), g1["biases"][...].astype(np.float64)
z = np.zeros((40, 4, 26, 26))           # cross-correlation, valid, stride 1
for i in range(3):
    for j in range(3):
        z += W[None, :, 0, i, j, None, None] * x[:, None, i:i + 26, j:j + 26]
m = np.tanh(z.reshape(40, 4, 13, 2, 13, 2).max(axis=(3, 5)) + b[None, :, None, None])
e1 = np.abs(m[:3] - a1[-1]).max()
y2 = np.tanh(m.reshape(40, -1) @ g2["weights"][...].T.astype(np.float64) + g2["biases"][...])
e2 = np.abs(y2 - a2[-1]).max()
print(f"feature maps: max |numpy - stored| {e1:.2e}; the dense layer after them {e2:.2e}")
assert e1 < 1e-5 and e2 < 1e-5, (e1, e2)
PYEOF
h5dump -H -g /model/layer_1 "$tmp/conv.h5" >"$tmp/dump" 2>&1 && grep -q 'SIMPLE { ( 4, 1, 3, 3 )' "$tmp/dump" \
  && grep -q 'ATTRIBUTE "kind"' "$tmp/dump" && h5dump -d /activations/layer_1 "$tmp/conv.h5" >/dev/null 2>&1 \
  && pass "h5dump reads the conv layer and its feature maps" || fail "h5dump conv: $(head -20 "$tmp/dump")"
finish
