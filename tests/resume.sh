#!/usr/bin/env bash
# Exact resume: stopped and resumed runs end bit-identical to uninterrupted ones (same ranks), from
# an epoch boundary and from the middle of an epoch; P=1 -> P=3 within 1e-5; flags that contradict
# the stored configuration are refused; a run killed before its first checkpoint starts over.
. "$(dirname "$0")/lib.sh"
need_mnist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=/usr/bin/python3; SAME="$PY $(dirname "$0")/same_model.py"
A=(--sizes 784,30,10 --init nielsen --eta 0.5 --train-samples 3000 --probe 100 --data "$NNDL_TEST_DATA" --no-progress)
t() { mpi "$@" >"$tmp/out" 2>&1; }

t -n 2 "$NNDL_TRAIN" "${A[@]}" --epochs 4 --out "$tmp/full.h5" || fail "reference run: $(tail -3 "$tmp/out")"

# 1. stop after epoch 2, resume to 4 (the original command line plus --resume, --epochs grown)
t -n 2 "$NNDL_TRAIN" "${A[@]}" --epochs 2 --out "$tmp/a.h5"
t -n 2 "$NNDL_TRAIN" "${A[@]}" --epochs 4 --resume "$tmp/a.h5" && grep -q "resumed after epoch 2, step 0" "$tmp/out" \
  && $SAME "$tmp/full.h5" "$tmp/a.h5" >"$tmp/cmp" && pass "2 + 2 epochs = 4 epochs, bit for bit: $(tr '\n' ' ' <"$tmp/cmp")" \
  || fail "resume at an epoch boundary: $(cat "$tmp/out" "$tmp/cmp")"

# 2. mid-epoch: stopped after 130 steps (epoch 1 has 300), then again in epoch 3, then to the end
t -n 2 "$NNDL_TRAIN" "${A[@]}" --epochs 4 --out "$tmp/b.h5" --stop-after-steps 130; rc1=$?
t -n 2 "$NNDL_TRAIN" --resume "$tmp/b.h5" --stop-after-steps 500; rc2=$?
grep -q "resumed after epoch 0, step 130" "$tmp/out" || fail "second launch did not resume mid-epoch: $(cat "$tmp/out")"
t -n 2 "$NNDL_TRAIN" --resume "$tmp/b.h5"; rc3=$?
[ $rc1 -eq 75 ] && [ $rc2 -eq 75 ] && [ $rc3 -eq 0 ] && pass "stops exit 75, the last launch 0" || fail "exit statuses $rc1 $rc2 $rc3"
$SAME "$tmp/full.h5" "$tmp/b.h5" >"$tmp/cmp" && pass "resumed twice mid-epoch = uninterrupted, bit for bit" \
  || fail "mid-epoch resume: $(cat "$tmp/cmp")"
$PY - "$tmp/full.h5" "$tmp/b.h5" <<'PYEOF' && pass "metrics and histories continue as if never stopped" || fail "metrics after resume"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
for m in ("train_cost", "val_accuracy", "val_cost"):
    assert np.array_equal(a["metrics/" + m][...], b["metrics/" + m][...]), m
assert list(b["history/epoch"][...]) == [0, 1, 2, 3, 4]
assert np.array_equal(a["history/layer_1/weights"][...], b["history/layer_1/weights"][...])
assert np.array_equal(a["activations/layer_1"][...], b["activations/layer_1"][...])
assert b.attrs["status"] in (b"completed", "completed")
PYEOF

# 3. another rank count: 1 rank stops mid-epoch, 3 ranks finish (non-chaotic setting)
t -n 1 "$NNDL_TRAIN" "${A[@]}" --epochs 3 --out "$tmp/p1.h5" || fail "np 1 reference"
t -n 1 "$NNDL_TRAIN" "${A[@]}" --epochs 3 --out "$tmp/c.h5" --stop-after-steps 450
t -n 3 "$NNDL_TRAIN" --resume "$tmp/c.h5" && $SAME "$tmp/p1.h5" "$tmp/c.h5" 1e-5 >"$tmp/cmp" \
  && pass "P=1 -> P=3 resume within 1e-5: $(tr '\n' ' ' <"$tmp/cmp")" || fail "P=1 -> P=3: $(cat "$tmp/out" "$tmp/cmp")"

# 4. flags that contradict the stored configuration; --epochs below what is done
t -n 2 "$NNDL_TRAIN" --resume "$tmp/a.h5" --eta 0.1; rc=$?
[ $rc -eq 2 ] && grep -q -- "--eta 0.1 contradicts the run's stored eta = 0.5" "$tmp/out" \
  && pass "a contradicting flag is refused, named: $(grep error: "$tmp/out" | head -c 150)" || fail "contradiction: $rc $(cat "$tmp/out")"
t -n 2 "$NNDL_TRAIN" --resume "$tmp/a.h5" --sizes 784,30,10 --eta 0.5 --epochs 5 && pass "agreeing flags are fine, --epochs grows" \
  || fail "agreeing flags: $(tail -3 "$tmp/out")"
t -n 2 "$NNDL_TRAIN" --resume "$tmp/a.h5" --epochs 2; rc=$?
[ $rc -eq 2 ] && grep -q "already trained 5 epochs" "$tmp/out" && pass "--epochs below the epochs done is refused" \
  || fail "--epochs shrink: $rc $(cat "$tmp/out")"

# 5. chapter 3 state survives a stop: momentum velocity, the schedule (patience 1: eta decays), dropout and
#    augmentation draws (functions of seed, epoch, sample); stopped mid-epoch, twice
C=(--sizes 784,30,10 --act tanh --cost log-likelihood --init nielsen --eta 0.05 --momentum 0.9 --dropout 0.2 --l2 1
   --augment shift --patience 1 --lr-decay 2 --train-samples 1000 --epochs 8 --probe 50 --data "$NNDL_TEST_DATA" --no-progress)
t -n 2 "$NNDL_TRAIN" "${C[@]}" --out "$tmp/c3full.h5" || fail "chapter 3 reference: $(tail -3 "$tmp/out")"
t -n 2 "$NNDL_TRAIN" "${C[@]}" --out "$tmp/c3.h5" --stop-after-steps 250
t -n 2 "$NNDL_TRAIN" --resume "$tmp/c3.h5" --stop-after-steps 230
t -n 2 "$NNDL_TRAIN" --resume "$tmp/c3.h5"
$SAME "$tmp/c3full.h5" "$tmp/c3.h5" >"$tmp/cmp" && $PY - "$tmp/c3full.h5" "$tmp/c3.h5" <<'PYEOF' \
  && pass "momentum + schedule + dropout + augment + L2, stopped twice mid-epoch: bit-identical, same eta sequence" \
  || fail "chapter 3 resume: $(cat "$tmp/cmp")"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
la, lb = a["metrics/learning_rate"][...], b["metrics/learning_rate"][...]
print("eta per epoch:", la)
assert np.array_equal(la, lb) and np.array_equal(a["metrics/val_accuracy"][...], b["metrics/val_accuracy"][...])
assert len(set(la)) > 1, "the schedule decayed eta at least once"
assert np.array_equal(a["checkpoint/optim/state"][...], b["checkpoint/optim/state"][...]), "velocity"
PYEOF

# 5b. the node-shared fused step (--reduce shared: one shared copy of the parameters and of the batch's
#     activations, each rank updating its share of every layer): a mid-epoch stop and resume on 3 ranks
#     is bit-identical too, and the run file holds the trained parameters (the shared copy is what is
#     written); with momentum, the shared velocity is what the checkpoint keeps
S=(--sizes 784,100,10 --cost cross-entropy --init nielsen --eta 0.5 --l2 2 --train-samples 2000 --epochs 3 --probe 20
   --data "$NNDL_TEST_DATA" --no-progress --reduce shared)
t -n 3 "$NNDL_TRAIN" "${S[@]}" --out "$tmp/sfull.h5" --log "$tmp/sfull.log" || fail "shared reference: $(tail -3 "$tmp/out")"
t -n 3 "$NNDL_TRAIN" "${S[@]}" --out "$tmp/s.h5" --stop-after-steps 290; rc1=$?
t -n 3 "$NNDL_TRAIN" --resume "$tmp/s.h5" --log "$tmp/s.log"; rc2=$?
t -n 1 "$NNDL_TRAIN" "${S[@]}" --reduce mpi --out "$tmp/s1.h5" || fail "np 1 reference for shared"
[ $rc1 -eq 75 ] && [ $rc2 -eq 0 ] && $SAME "$tmp/sfull.h5" "$tmp/s.h5" >"$tmp/cmp" && $SAME "$tmp/s1.h5" "$tmp/s.h5" 1e-5 >>"$tmp/cmp" \
  && pass "--reduce shared: stopped mid-epoch and resumed = uninterrupted, bit for bit; within 1e-5 of np 1 (no fusion): $(tail -1 "$tmp/cmp")" \
  || fail "--reduce shared resume: $rc1 $rc2 $(cat "$tmp/cmp")"
t -n 3 "$NNDL_TRAIN" "${S[@]}" --reduce mpi --out "$tmp/smpi.h5" && ! $SAME "$tmp/sfull.h5" "$tmp/smpi.h5" >/dev/null \
  && pass "--reduce shared really took the shared path (its bits differ from --reduce mpi on 3 ranks)" \
  || fail "--reduce shared gave the MPI path's bits"
U=("${S[@]}" --split units --dropout 0.2)
t -n 3 "$NNDL_TRAIN" "${U[@]}" --out "$tmp/ufull.h5" || fail "split units reference: $(tail -3 "$tmp/out")"
t -n 3 "$NNDL_TRAIN" "${U[@]}" --out "$tmp/u.h5" --stop-after-steps 290; rc1=$?
t -n 3 "$NNDL_TRAIN" --resume "$tmp/u.h5"; rc2=$?
t -n 1 "$NNDL_TRAIN" "${S[@]}" --dropout 0.2 --reduce mpi --out "$tmp/u1.h5" || fail "np 1 reference for split units"
[ $rc1 -eq 75 ] && [ $rc2 -eq 0 ] && $SAME "$tmp/ufull.h5" "$tmp/u.h5" >"$tmp/cmp" && $SAME "$tmp/u1.h5" "$tmp/u.h5" 1e-5 >>"$tmp/cmp" \
  && pass "--reduce shared --split units (dropout): resumed = uninterrupted bit for bit; within 1e-5 of np 1: $(tail -1 "$tmp/cmp")" \
  || fail "--split units resume: $rc1 $rc2 $(cat "$tmp/cmp")"
# 5c. conv layers (chapter 6): stopped mid-epoch on 2 ranks and resumed = uninterrupted, bit for bit,
#     momentum's velocity included; the history and feature maps continue
V=(--layers conv:6x5x5,pool:2x2,conv:8x3x3,dense:30,dense:10 --act relu --cost log-likelihood --init network3
   --eta 0.05 --momentum 0.5 --dropout 0.2 --train-samples 1000 --epochs 2 --probe 20 --probe-conv 4
   --data "$NNDL_TEST_DATA" --no-progress)
t -n 2 "$NNDL_TRAIN" "${V[@]}" --out "$tmp/vfull.h5" || fail "conv reference: $(tail -3 "$tmp/out")"
t -n 2 "$NNDL_TRAIN" "${V[@]}" --out "$tmp/v.h5" --stop-after-steps 130; rc1=$?
t -n 2 "$NNDL_TRAIN" --resume "$tmp/v.h5"; rc2=$?
[ $rc1 -eq 75 ] && [ $rc2 -eq 0 ] && $SAME "$tmp/vfull.h5" "$tmp/v.h5" >"$tmp/cmp" && $PY - "$tmp/vfull.h5" "$tmp/v.h5" <<'PYEOF' \
  && pass "conv layers, momentum, dropout: stopped mid-epoch and resumed = uninterrupted, bit for bit" \
  || fail "conv resume: $rc1 $rc2 $(cat "$tmp/cmp")"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
assert np.array_equal(a["checkpoint/optim/state"][...], b["checkpoint/optim/state"][...]), "velocity"
assert np.array_equal(a["history/layer_1/weights"][...], b["history/layer_1/weights"][...])
assert b["activations/layer_1"].shape == (3, 4, 6, 12, 12), b["activations/layer_1"].shape
assert np.array_equal(a["activations/layer_1"][...], b["activations/layer_1"][...])
PYEOF
#     the same with --split units (dense layers by units: each rank's share of delta·W in a shared
#     slot, summed), on 3 ranks
t -n 3 "$NNDL_TRAIN" "${V[@]}" --split units --out "$tmp/wfull.h5" || fail "conv units reference: $(tail -3 "$tmp/out")"
t -n 3 "$NNDL_TRAIN" "${V[@]}" --split units --out "$tmp/w.h5" --stop-after-steps 130; rc1=$?
t -n 3 "$NNDL_TRAIN" --resume "$tmp/w.h5"; rc2=$?
grep -q "split by units (conv layers by rows)" "$tmp/out" && [ $rc1 -eq 75 ] && [ $rc2 -eq 0 ] \
  && $SAME "$tmp/wfull.h5" "$tmp/w.h5" >"$tmp/cmp" \
  && pass "conv layers --split units: stopped mid-epoch and resumed = uninterrupted, bit for bit" \
  || fail "conv units resume: $rc1 $rc2 $(cat "$tmp/cmp" "$tmp/out")"
M=("${S[@]}" --momentum 0.5 --eta 0.2)
t -n 3 "$NNDL_TRAIN" "${M[@]}" --out "$tmp/mfull.h5" || fail "shared momentum reference: $(tail -3 "$tmp/out")"
t -n 3 "$NNDL_TRAIN" "${M[@]}" --out "$tmp/m.h5" --stop-after-steps 290; rc1=$?
t -n 3 "$NNDL_TRAIN" --resume "$tmp/m.h5"; rc2=$?
t -n 1 "$NNDL_TRAIN" "${M[@]}" --reduce mpi --out "$tmp/m1.h5" || fail "np 1 reference for shared momentum"
[ $rc1 -eq 75 ] && [ $rc2 -eq 0 ] && $SAME "$tmp/mfull.h5" "$tmp/m.h5" >"$tmp/cmp" && $SAME "$tmp/m1.h5" "$tmp/m.h5" 1e-5 >>"$tmp/cmp" \
  && $PY -c "import sys, h5py, numpy as np
a, b = (h5py.File(p, 'r')['checkpoint/optim/state'][...] for p in sys.argv[1:])
assert np.abs(b).max() > 0 and np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), (np.abs(a).max(), np.abs(a - b).max())" "$tmp/m1.h5" "$tmp/m.h5" \
  && pass "--reduce shared --momentum: resumed = uninterrupted bit for bit; weights and velocity within 1e-5 of np 1: $(tail -1 "$tmp/cmp")" \
  || fail "--reduce shared --momentum: $rc1 $rc2 $(cat "$tmp/cmp")"

# 6. killed before its first checkpoint: the resume starts over from the stored configuration
t -n 2 "$NNDL_TRAIN" "${A[@]}" --epochs 4 --out "$tmp/d.h5" --checkpoint-every 0 --stop-after-steps 10
$PY - "$tmp/d.h5.d/MANIFEST.json" <<'PYEOF'
import json, os, sys
m = json.load(open(sys.argv[1]))           # forget the stop's checkpoint: as if killed before it
for c in m["checkpoints"]:
    os.remove(os.path.join(os.path.dirname(sys.argv[1]), c)); m["files"].pop(c)
m["checkpoints"] = []
json.dump(m, open(sys.argv[1], "w"))
PYEOF
t -n 2 "$NNDL_TRAIN" --resume "$tmp/d.h5" && $SAME "$tmp/full.h5" "$tmp/d.h5" >"$tmp/cmp" \
  && pass "no checkpoint yet: starts over from the stored configuration and matches" || fail "start over: $(cat "$tmp/out" "$tmp/cmp")"
finish
