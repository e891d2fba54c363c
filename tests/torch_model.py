"""A run file's model as torch.nn layers (Conv2d, MaxPool2d, Linear, as nndl's layouts promise), for the
PyTorch cross-checks of tests/torch_crossload.sh:
  torch_model.py check RUN DATA                  predictions = nndl-eval's stored /eval/test; feature maps
  torch_model.py ensemble DATA ACCURACY RUN...   the plurality vote's test accuracy = nndl-eval --ensemble's
"""
import gzip, os, sys
import h5py, numpy as np, torch


def idx(data, name):
    p = os.path.join(data, name)
    raw = open(p, "rb").read() if os.path.exists(p) else gzip.open(p + ".gz").read()
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def build(f):
    layers, prev = [], None
    for k in range(1, len(f["model"]) + 1):
        g = f[f"model/layer_{k}"]
        kind, act = text(g.attrs["kind"]), text(g.attrs["activation"])
        w, b = torch.from_numpy(g["weights"][...]), torch.from_numpy(g["biases"][...])
        if kind == "conv":
            m = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2])
            assert int(g.attrs["kernel"]) == w.shape[2] == w.shape[3]
        else:
            if prev == "conv":
                layers.append(torch.nn.Flatten())  # (channel, row, column): nndl's order
            m = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            m.weight.copy_(w)
            m.bias.copy_(b)
        layers.append(m)
        if kind == "conv" and int(g.attrs["pool"]) > 1:
            layers.append(torch.nn.MaxPool2d(int(g.attrs["pool"])))
        layers += {"relu": [torch.nn.ReLU()], "sigmoid": [torch.nn.Sigmoid()], "tanh": [torch.nn.Tanh()],
                   "softmax": [torch.nn.Softmax(1)]}[act]
        prev = kind
    return torch.nn.Sequential(*layers).eval()


def test_images(data):
    x = idx(data, "t10k-images-idx3-ubyte").reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return torch.from_numpy(x), idx(data, "t10k-labels-idx1-ubyte").astype(np.int64)


def check(run, data):
    f = h5py.File(run, "r")
    net = build(f)
    x, y = test_images(data)
    with torch.no_grad():
        pred = net(x).argmax(1).numpy()
    conf = np.zeros((10, 10), np.int64)
    np.add.at(conf, (y, pred), 1)
    diff = int(np.abs(conf - f["eval/test/confusion"][...]).sum()) // 2
    assert diff == 0, f"{diff} of 10000 test predictions differ from nndl's"
    probe = f["activations/indices"][...][: f["activations/layer_1"].shape[1]]
    xp = idx(data, "train-images-idx3-ubyte")[probe].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    with torch.no_grad():
        maps = net[:3](torch.from_numpy(xp)).numpy()  # conv, pool, activation
    stored = f["activations/layer_1"][-1]
    err = float(np.abs(maps - stored).max() / max(np.abs(maps).max(), 1e-30))
    assert stored.shape == maps.shape and err < 1e-5, (stored.shape, maps.shape, err)
    print(f"torch.nn.Conv2d/MaxPool2d/Linear with nndl's weights: the same 10,000 test predictions "
          f"(accuracy {np.trace(conf) / 1e4:.4f}); layer 1 feature maps within {err:.1e} of the stored ones")


def ensemble(data, accuracy, runs):
    x, y = test_images(data)
    votes, sums = np.zeros((len(y), 10)), np.zeros((len(y), 10))
    for run in runs:
        with torch.no_grad():
            out = build(h5py.File(run, "r"))(x).numpy().astype(np.float64)
        votes[np.arange(len(y)), out.argmax(1)] += 1
        sums += out
    pick = [max(range(10), key=lambda j: (v[j], s[j])) for v, s in zip(votes, sums)]
    acc = float(np.mean(np.array(pick) == y))
    assert abs(acc - float(accuracy)) < 1.5e-4, (acc, accuracy)
    print(f"the plurality vote of {len(runs)} runs' models in torch: test accuracy {acc:.4f} = nndl-eval --ensemble's")


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        ensemble(sys.argv[2], sys.argv[3], sys.argv[4:])
