#!/usr/bin/env bash
# Chapter 5's speed of learning (--monitor speed): at every snapshot the speeds in the run file equal an
# independent computation (plain backprop in numpy, written here, from the run file's weight history and the
# IDX file) within 1e-4 relative, for a sigmoid and a ReLU net on 1 and 3 ranks; the JSON log carries the same
# numbers; the run ends with the same weights as one without --monitor speed; a resume continues the series;
# bad --speed-samples exit 2 with one line.
. "$(dirname "$0")/lib.sh"
need_mnist
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--sizes 784,30,30,30,10 --cost cross-entropy --init nielsen --eta 0.1 --l2 5 --epochs 2 --train-samples 2000
  --val-samples 1000 --data "$NNDL_TEST_DATA" --no-progress)
check() { # RUN.h5 LOG.jsonl ACT N
  $PY - "$1" "$2" "$NNDL_TEST_DATA" "$3" "$4" <<'PYEOF'
import gzip, json, os, sys, h5py, numpy as np
run, log, data, act, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def idx(path):
    raw = open(path, "rb").read() if os.path.exists(path) else gzip.open(path + ".gz").read()
    dims = [int.from_bytes(raw[4 + 4*i:8 + 4*i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4*raw[3]).reshape(dims)
X = idx(os.path.join(data, "train-images-idx3-ubyte"))[:n].reshape(n, 784).astype(np.float64) / 255
Y = np.eye(10)[idx(os.path.join(data, "train-labels-idx1-ubyte"))[:n]]
f = h5py.File(run, "r")
L = len([k for k in f["model"] if k.startswith("layer_")])
sig = lambda z: 1 / (1 + np.exp(-z))
f_act = {"sigmoid": sig, "relu": lambda z: np.maximum(z, 0)}[act]
d_act = {"sigmoid": lambda a: a * (1 - a), "relu": lambda a: (a > 0).astype(np.float64)}[act]
sp_epoch = list(f["speed/epoch"][...])
assert sp_epoch == list(range(len(sp_epoch))), sp_epoch   # the start (0), then every epoch
checked = 0
for s, e in enumerate(f["history/epoch"][...]):
    W = [f[f"history/layer_{k}/weights"][s].astype(np.float64) for k in range(1, L + 1)]
    B = [f[f"history/layer_{k}/biases"][s].astype(np.float64) for k in range(1, L + 1)]
    a = [X]
    for l in range(L):                      # hidden layers: act; the output: sigmoid (cross-entropy)
        z = a[-1] @ W[l].T + B[l]
        a.append(sig(z) if l == L - 1 else f_act(z))
    d = [None] * L
    d[L - 1] = a[L] - Y                     # cross-entropy with sigmoid outputs: dC/dz = a - y
    for l in range(L - 2, -1, -1):
        d[l] = (d[l + 1] @ W[l + 1]) * d_act(a[l + 1])
    want = [np.linalg.norm(d[l].mean(0)) for l in range(L)]
    got = [f[f"speed/layer_{k}"][sp_epoch.index(e)] for k in range(1, L + 1)]
    rel = max(abs(g - w) / w for g, w in zip(got, want))
    print(f"epoch {e}: nndl {np.round(got, 5)} numpy {np.round(want, 5)}, largest relative difference {rel:.1e}")
    assert rel < 1e-4, rel
    checked += 1
assert checked == 3, checked
lines = [json.loads(x) for x in open(log)]
logged = {x["epoch"]: x["speed"] for x in lines if "speed" in x}
assert sorted(logged) == sp_epoch, logged.keys()
for e, v in logged.items():
    assert np.allclose(v, [f[f"speed/layer_{k}"][sp_epoch.index(e)] for k in range(1, L + 1)], rtol=1e-12), e
PYEOF
}
for act in sigmoid relu; do
  for np in 1 3; do
    run=$tmp/$act-np$np
    if mpi -n $np "$NNDL_TRAIN" "${common[@]}" --act $act --monitor speed --speed-samples 300 --out $run.h5 \
      --log $run.jsonl >$run.out 2>&1 && check $run.h5 $run.jsonl $act 300 >$run.check 2>&1; then
      pass "$act, -np $np: speeds = numpy's backprop at epochs 0, 1, 2 ($(tail -1 $run.check | sed 's/.*largest/largest/'))"
    else
      fail "$act, -np $np: $(tail -3 $run.out $run.check 2>/dev/null | tr '\n' ' ')"
    fi
  done
done
# the model does not change: the same final weights with and without it
mpi -n 3 "$NNDL_TRAIN" "${common[@]}" --act sigmoid --out $tmp/plain.h5 >$tmp/plain.out 2>&1
a=$(grep -o 'SHA-256: [0-9a-f]*' $tmp/sigmoid-np3.out) b=$(grep -o 'SHA-256: [0-9a-f]*' $tmp/plain.out)
[ -n "$a" ] && [ "$a" = "$b" ] && pass "--monitor speed leaves the weights alone ($a)" || fail "weights differ: '$a' vs '$b'"
# a resume continues the series: epochs 0, 1 then 2, 3
mpi -n 2 "$NNDL_TRAIN" "${common[@]}" --epochs 1 --monitor speed --speed-samples 300 --out $tmp/r.h5 >/dev/null 2>&1
mpi -n 2 "$NNDL_TRAIN" --resume $tmp/r.h5 --epochs 3 --no-progress >$tmp/r.out 2>&1
mpi -n 2 "$NNDL_TRAIN" "${common[@]}" --epochs 3 --monitor speed --speed-samples 300 --out $tmp/once.h5 >/dev/null 2>&1
if $PY - $tmp/r.h5 $tmp/once.h5 <<'PYEOF'; then pass "resume: the series goes on (epochs 0-3), equal to one run's"; else fail "resume: $(tail -2 $tmp/r.out)"; fi
import sys, h5py, numpy as np
r, o = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert list(r["speed/epoch"][...]) == [0, 1, 2, 3], r["speed/epoch"][...]
for k in range(1, 5):
    assert np.array_equal(r[f"speed/layer_{k}"][...], o[f"speed/layer_{k}"][...]), k
PYEOF
# bad --speed-samples: exit 2, one line naming the flag
expect2() { # WHAT ARGS...
  local what=$1; shift
  "$NNDL_TRAIN" "$@" --data "$NNDL_TEST_DATA" --out $tmp/bad.h5 --no-progress >$tmp/bad.out 2>&1
  local rc=$?
  if [ $rc -eq 2 ] && [ "$(wc -l <$tmp/bad.out)" -eq 1 ] && grep -q -- "$what" $tmp/bad.out && [ ! -e $tmp/bad.h5 ]; then
    pass "exit 2: $(cat $tmp/bad.out)"
  else
    fail "$* -> exit $rc: $(cat $tmp/bad.out)"
  fi
}
expect2 "found '0'" --monitor speed --speed-samples 0
expect2 "found '-5'" --monitor speed --speed-samples -5
expect2 "more than the 2000 training samples" --monitor speed --speed-samples 2001 --train-samples 2000
finish
