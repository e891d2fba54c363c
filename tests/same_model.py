"""same_model.py A.h5 B.h5 [TOL]: compare the /model parameters of two run files layer by layer.
TOL absent: bit-identical. Otherwise every layer's ||W_A - W_B|| / ||W_A|| (Frobenius) <= TOL.
Prints the figures; exit status 0 when they agree."""
import sys

import h5py
import numpy as np

a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
tol = float(sys.argv[3]) if len(sys.argv) > 3 else None
ok = True
for name in sorted(a["model"]):
    for part in ("weights", "biases"):
        x, y = a[f"model/{name}/{part}"][...], b[f"model/{name}/{part}"][...]
        rel = float(np.linalg.norm(x - y) / np.linalg.norm(x))
        same = bool(np.array_equal(x, y))
        good = same if tol is None else rel <= tol
        ok &= good
        print(f"{name}/{part}: {'bit-identical' if same else f'relative difference {rel:.3g}'}"
              f"{'' if good else ' (FAIL)'}")
sys.exit(0 if ok else 1)
