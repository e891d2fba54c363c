"""nndl-plot on run files made here by real short nndl-train runs (real MNIST, real mpirun).

Environment: NNDL_TRAIN, NNDL_EVAL, MPIEXEC, NNDL_TEST_DATA, NNDL_PLOT (set by CTest)."""
import gzip
import os
import subprocess

import h5py
import imageio
import numpy as np
import pytest

TRAIN, EVAL, PLOT = os.environ["NNDL_TRAIN"], os.environ["NNDL_EVAL"], os.environ["NNDL_PLOT"]
MPI, DATA = os.environ["MPIEXEC"], os.environ["NNDL_TEST_DATA"]


def train(out, *flags, np_=2):
    cmd = [MPI, "--oversubscribe", "-n", str(np_), TRAIN, "--data", DATA, "--out", str(out), "--no-progress", *flags]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return str(out)


def plot(*args):
    return subprocess.run([PLOT, *map(str, args)], capture_output=True, text=True, timeout=600)


def idx(name):
    p = os.path.join(DATA, name)
    data = (open if os.path.exists(p) else gzip.open)(p if os.path.exists(p) else p + ".gz", "rb").read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    r = {}
    # the seed's two pictures: no hidden layer (784-10), and a 3-unit bottleneck (784-10-3-10)
    r["mask"] = train(d / "mask.h5", "--sizes", "784,10", "--init", "nielsen", "--eta", "3", "--epochs", "3",
                      "--train-samples", "10000")
    r["latent"] = train(d / "latent.h5", "--sizes", "784,10,3,10", "--init", "nielsen", "--eta", "3", "--epochs", "4",
                        "--train-samples", "20000", "--probe", "1000")
    r["wide"] = train(d / "wide.h5", "--sizes", "784,30,10", "--init", "nielsen", "--epochs", "2",
                      "--train-samples", "3000", "--probe", "300")
    r["ce"] = train(d / "ce.h5", "--sizes", "784,30,10", "--init", "nielsen", "--cost", "cross-entropy", "--eta", "0.5",
                    "--epochs", "3", "--train-samples", "3000", "--patience", "1", "--monitor", "train")
    r["nohist"] = train(d / "nohist.h5", "--sizes", "784,30,10", "--epochs", "1", "--train-samples", "1000",
                        "--history-every", "0")
    r["noprobe"] = train(d / "noprobe.h5", "--sizes", "784,30,10", "--epochs", "1", "--train-samples", "1000",
                         "--probe", "0")
    r["conv"] = train(d / "conv.h5", "--layers", "conv:8x5x5,pool:2x2,conv:6x3x3,dense:20,dense:10", "--act", "relu",
                      "--cost", "log-likelihood", "--init", "network3", "--eta", "0.05", "--epochs", "2",
                      "--train-samples", "2000", "--probe", "100", "--probe-conv", "3")
    r["speed"] = train(d / "speed.h5", "--sizes", "784,30,30,10", "--cost", "cross-entropy", "--init", "nielsen",
                       "--eta", "0.1", "--epochs", "3", "--train-samples", "2000", "--monitor", "speed",
                       "--speed-samples", "500", "--probe", "0")
    subprocess.run([EVAL, r["wide"]], check=True, capture_output=True)
    r["grid"] = [train(d / f"grid-b{b}-e{e}.h5", "--batch", str(b), "--eta", str(e), "--epochs", "1",
                       "--train-samples", "2000", "--probe", "0", "--history-every", "0")
                 for b in (10, 20) for e in (1.0, 3.0)]
    r["dir"] = d
    return r


def frames(path):
    return imageio.mimread(path)


def test_weights_gif_frames_size_and_meaning(runs, tmp_path):
    out = tmp_path / "w.gif"
    r = plot("weights", runs["mask"], "-o", out, "--size", "500x400")
    assert r.returncode == 0, r.stderr
    f = frames(out)
    assert len(f) == len(h5py.File(runs["mask"], "r")["history/epoch"]) == 4  # epochs 0..3
    assert all(x.shape[:2] == (400, 500) for x in f)
    assert imageio.imread(tmp_path / "w.png").shape[:2] == (400, 500)
    # the masks mean what they claim: each digit's mask correlates with its mean image minus the overall mean
    w = h5py.File(runs["mask"], "r")["history/layer_1/weights"][-1]
    x = idx("train-images-idx3-ubyte")[:10000].reshape(10000, 784) / 255.0
    y = idx("train-labels-idx1-ubyte")[:10000]
    overall = x.mean(axis=0)
    for digit in range(10):
        target = x[y == digit].mean(axis=0) - overall
        r_ = np.corrcoef(w[digit], target)[0, 1]
        print(f"digit {digit}: mask correlation {r_:.2f}")
        assert r_ > 0.3, f"digit {digit}: mask correlation {r_:.2f}"


def test_weights_of_a_hidden_layer(runs, tmp_path):
    out = tmp_path / "h.gif"
    r = plot("weights", runs["wide"], "-o", out, "--layer", "1", "--size", "300x300")
    assert r.returncode == 0, r.stderr
    assert "30 units of layer 1" in r.stdout
    r = plot("weights", runs["wide"], "-o", tmp_path / "h2.gif", "--layer", "2", "--size", "300x300")
    assert r.returncode == 0, r.stderr  # not images: a heat map of the [10 x 30] matrix per frame
    assert len(frames(tmp_path / "h2.gif")) == 3


def test_latent_gif_and_separable_digits(runs, tmp_path):
    out = tmp_path / "l.gif"
    r = plot("latent", runs["latent"], "-o", out, "--size", "480x480")
    assert r.returncode == 0, r.stderr
    f = h5py.File(runs["latent"], "r")
    assert len(frames(out)) == len(f["activations/epoch"]) == 5
    assert frames(out)[0].shape[:2] == (480, 480)
    a, lab = f["activations/layer_2"][-1], f["activations/labels"][...]  # layer 2 = the 3 units
    assert a.shape == (1000, 3)
    centroids = np.stack([a[lab == c].mean(axis=0) for c in range(10)])
    pred = np.argmin(((a[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    acc = (pred == lab).mean()
    assert acc > 0.6, f"nearest-centroid accuracy on the 3-D activations: {acc:.2f}"
    r = plot("latent", runs["wide"], "-o", tmp_path / "pca.gif", "--dims", "2", "--size", "300x300")
    assert r.returncode == 0 and "PCA of 30 units to 2-D" in r.stdout, r.stdout + r.stderr


def test_curves_overlay_and_schedule(runs, tmp_path):
    out = tmp_path / "c.png"
    r = plot("curves", runs["wide"], runs["ce"], "-o", out, "--labels", "quadratic,cross-entropy", "--size", "900x400")
    assert r.returncode == 0, r.stderr
    assert imageio.imread(out).shape[:2] == (400, 900)


def test_confusion(runs, tmp_path):
    out = tmp_path / "m.png"
    r = plot("confusion", runs["wide"], "-o", out, "--size", "500x500")
    assert r.returncode == 0, r.stderr
    assert "confusion matrix of 10000 test samples" in r.stdout
    assert imageio.imread(out).shape[:2] == (500, 500)


def test_grid_heatmap_and_sorted_table(runs, tmp_path):
    out = tmp_path / "g.png"
    r = plot("grid", *runs["grid"], "-o", out)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.strip() and l.split()[0].isdigit()]
    assert len(lines) == 4
    accs = [float(l.split()[2].rstrip("%")) for l in lines]
    assert accs == sorted(accs, reverse=True)
    assert "2 batch sizes x 2 learning rates" in r.stdout
    assert imageio.imread(out).shape[:2] == (800, 800)


def test_speed_one_panel_per_run_log_scale(runs, tmp_path):
    one, two = tmp_path / "s1.png", tmp_path / "s2.png"
    r = plot("speed", runs["speed"], "-o", one)
    assert r.returncode == 0, r.stderr
    assert "speed of learning of 1 run(s)" in r.stdout
    assert imageio.imread(one).shape[:2] == (500, 600)
    r = plot("speed", runs["speed"], runs["speed"], "-o", two, "--labels", "a,b")
    assert r.returncode == 0, r.stderr
    assert imageio.imread(two).shape[:2] == (500, 1100)  # one panel each
    f = h5py.File(runs["speed"], "r")
    assert list(f["speed/epoch"][...]) == [0, 1, 2, 3]
    assert f["speed/layer_1"][0] < f["speed/layer_2"][0]  # chapter 5: the first hidden layer learns slower


@pytest.mark.parametrize("case", ["not_hdf5", "not_run", "no_history", "no_probes", "bad_layer", "no_eval",
                                  "missing_companions", "wrong_ext", "no_speed"])
def test_bad_input(runs, tmp_path, case):
    d = tmp_path
    if case == "not_hdf5":
        (d / "x.h5").write_text("hello")
        args, msg = ("weights", d / "x.h5", "-o", d / "o.gif"), "not an HDF5 file"
    elif case == "not_run":
        h5py.File(d / "p.h5", "w")["x"] = [1]
        args, msg = ("curves", d / "p.h5", "-o", d / "o.png"), "not an nndl run file"
    elif case == "no_history":
        args, msg = ("weights", runs["nohist"], "-o", d / "o.gif"), "train with --history-every N"
    elif case == "no_probes":
        args, msg = ("latent", runs["noprobe"], "-o", d / "o.gif"), "train with --probe N"
    elif case == "bad_layer":
        args, msg = ("weights", runs["wide"], "-o", d / "o.gif", "--layer", "5"), "layer 5 does not exist"
    elif case == "no_eval":
        args, msg = ("confusion", runs["ce"], "-o", d / "o.png"), "run nndl-eval"
    elif case == "missing_companions":
        import shutil
        shutil.copy(runs["wide"], d / "copied.h5")
        args, msg = ("weights", d / "copied.h5", "-o", d / "o.gif"), "which is missing: copy that directory"
    elif case == "no_speed":
        args, msg = ("speed", runs["wide"], "-o", d / "o.png"), "train with --monitor speed"
    else:
        args, msg = ("weights", runs["wide"], "-o", d / "o.png"), "name it .gif"
    r = plot(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert msg in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_filters_gif_frames_and_values(runs, tmp_path):
    out = tmp_path / "f.gif"
    r = plot("filters", runs["conv"], "--layer", "1", "-o", out, "--size", "400x400")
    assert r.returncode == 0, r.stderr
    frames = imageio.mimread(out)
    assert len(frames) == 3 and frames[0].shape[:2] == (400, 400)  # the initialisation and 2 epochs
    assert os.path.exists(tmp_path / "f.png")
    with h5py.File(runs["conv"]) as f:  # what it draws: the layer's k x k filters, changing as it learns
        w = f["history/layer_1/weights"][...]
    assert w.shape == (3, 8, 1, 5, 5) and not np.array_equal(w[0], w[-1])
    assert not np.array_equal(frames[0], frames[-1])
    r = plot("filters", runs["conv"], "--layer", "2", "-o", tmp_path / "f2.gif")  # 6 filters x 8 channels
    assert r.returncode == 0, r.stderr


def test_featuremaps_of_a_probe(runs, tmp_path):
    out = tmp_path / "m.png"
    r = plot("featuremaps", runs["conv"], "--layer", "1", "--probe", "2", "-o", out, "--size", "500x500")
    assert r.returncode == 0, r.stderr
    assert imageio.imread(out).shape[:2] == (500, 500)
    with h5py.File(runs["conv"]) as f:  # the image shown is the probe's, the maps are 8 of 12x12
        img, idx_ = f["activations/images"][2], f["activations/indices"][2]
        assert f["activations/layer_1"].shape == (3, 3, 8, 12, 12)
    assert np.array_equal(img, idx("train-images-idx3-ubyte")[idx_])
    for bad, msg in ((["--layer", "3"], "dense layer"), (["--probe", "3"], "has no feature maps")):
        r = plot("featuremaps", runs["conv"], "-o", tmp_path / "x.png", *bad)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
