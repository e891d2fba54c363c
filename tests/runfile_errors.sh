#!/usr/bin/env bash
# Bad run files and bad places: each gets a clear one-line error (exit 2 for what the user can fix,
# 1 for a failing disk), no crash or hang, and nothing already in the run file is lost.
. "$(dirname "$0")/lib.sh"
need_mnist
tmp=$(mktemp -d); chmod 755 "$tmp"; trap 'umount "$tmp/full" 2>/dev/null; rm -rf "$tmp"' EXIT
PY=/usr/bin/python3; SAME="$PY $(dirname "$0")/same_model.py"
A=(--sizes 784,30,10 --init nielsen --eta 0.5 --train-samples 2000 --probe 100 --data "$NNDL_TEST_DATA" --no-progress)
t() { mpi "$@" >"$tmp/out" 2>&1; }
# expect STATUS 'message part' COMMAND...
expect() {
  local want=$1 msg=$2; shift 2
  t "$@"; local rc=$?
  if [ $rc -ne "$want" ]; then fail "$* -> exit $rc, expected $want: $(grep -v '^--\|^ \|^$\|Primary\|mpirun\|Process\|Exit code' "$tmp/out" | head -3)"
  elif ! grep -qF -- "$msg" "$tmp/out"; then fail "$* -> message lacks '$msg': $(grep error "$tmp/out")"
  else pass "exit $want: $(grep -m1 'error:' "$tmp/out" | cut -c1-170)"; fi
}

t -n 2 "$NNDL_TRAIN" "${A[@]}" --epochs 3 --out "$tmp/ref.h5" || fail "reference: $(tail -3 "$tmp/out")"

# --resume of what is not a run
echo "not hdf5" >"$tmp/text.h5"
expect 2 "is not an nndl run file" -n 2 "$NNDL_TRAIN" --resume "$tmp/text.h5"
$PY -c "import h5py; h5py.File('$tmp/plain.h5','w')['x'] = [1, 2]"
expect 2 "is not an nndl run file" -n 2 "$NNDL_TRAIN" --resume "$tmp/plain.h5"

# a run to spoil: stopped in epoch 2, two checkpoints kept
mk() { rm -rf "$tmp/r.h5" "$tmp/r.h5.d"; t -n 2 "$NNDL_TRAIN" "${A[@]}" --epochs 3 --out "$tmp/r.h5" --checkpoint-every-steps 50 --stop-after-steps 260; }
mk
sed -i 's/"nndl_format_version":\s*[0-9]*/"nndl_format_version": 99/' "$tmp/r.h5.d/MANIFEST.json"
expect 2 "written in run-file format 99 by a newer nndl" -n 2 "$NNDL_TRAIN" --resume "$tmp/r.h5"
mk; echo '{"nndl_format_version": 1, "fil' >"$tmp/r.h5.d/MANIFEST.json"
expect 2 "damaged manifest" -n 2 "$NNDL_TRAIN" --resume "$tmp/r.h5"

# the newest checkpoint damaged: the resume takes the one before, and still ends exactly
mk; newest=$(ls "$tmp/r.h5.d"/ckpt-* | tail -1)
printf 'XXXXXXXX' | dd of="$newest" bs=1 seek=3000 conv=notrunc status=none
t -n 2 "$NNDL_TRAIN" --resume "$tmp/r.h5" && $SAME "$tmp/ref.h5" "$tmp/r.h5" >/dev/null \
  && pass "damaged newest checkpoint: resumed from the one before ($(grep -o 'resumed after epoch [0-9]*, step [0-9]*' "$tmp/out")), same result" \
  || fail "fallback to the previous checkpoint: $(tail -3 "$tmp/out")"
mk; for c in "$tmp/r.h5.d"/ckpt-*; do printf 'XXXXXXXX' | dd of="$c" bs=1 seek=3000 conv=notrunc status=none; done
expect 2 "no intact checkpoint" -n 2 "$NNDL_TRAIN" --resume "$tmp/r.h5"

# a truncated main file: the checkpoints are intact, so the resume rewrites it; pack refuses it first
mk; head -c 5000 "$tmp/r.h5" >"$tmp/x" && mv "$tmp/x" "$tmp/r.h5"
expect 2 "changed since nndl wrote it" -n 1 "$NNDL_PACK" "$tmp/r.h5" "$tmp/p.h5"
t -n 2 "$NNDL_TRAIN" --resume "$tmp/r.h5" && $PY -c "import h5py; h5py.File('$tmp/r.h5','r')['model/layer_1/weights'][...]" \
  && pass "truncated main file: the resume rewrote it from the checkpoint" || fail "truncated main: $(tail -3 "$tmp/out")"

# --init-from: not HDF5, truncated, damaged bytes (HDF5 may crash or hang: contained), wrong shapes, good
expect 2 "not an HDF5 file" -n 2 "$NNDL_TRAIN" "${A[@]}" --epochs 1 --out "$tmp/i1.h5" --init-from "$tmp/text.h5"
head -c 20000 "$tmp/ref.h5" >"$tmp/trunc.h5"
expect 2 "trunc.h5" -n 2 "$NNDL_TRAIN" "${A[@]}" --epochs 1 --out "$tmp/i2.h5" --init-from "$tmp/trunc.h5"
crashed=0
for seed in 1 2 3 4 5 6; do
  $PY - "$tmp/ref.h5" "$tmp/bad.h5" "$seed" <<'PYEOF'
import random, sys
data = bytearray(open(sys.argv[1], "rb").read()); random.seed(int(sys.argv[3]))
for _ in range(200): data[random.randrange(0, 4096)] = random.randrange(256)   # the metadata at the front
open(sys.argv[2], "wb").write(data)
PYEOF
  t -n 1 "$NNDL_TRAIN" "${A[@]}" --epochs 1 --out "$tmp/i3-$seed.h5" --init-from "$tmp/bad.h5"; rc=$?
  grep -q "crashed the reader\|did not finish within" "$tmp/out" && crashed=$((crashed + 1))
  if [ $rc -eq 0 ] || [ $rc -eq 2 ]; then :; else fail "damaged --init-from (seed $seed): exit $rc: $(tail -2 "$tmp/out")"; fi
  [ $rc -eq 2 ] && ! grep -q "error:" "$tmp/out" && fail "damaged --init-from (seed $seed): exit 2 without a message"
done
pass "6 damaged --init-from files: each a clean exit 0 or 2 ($crashed crashed or hung the isolated HDF5 reader)"
$PY -c "
import h5py, numpy as np
with h5py.File('$tmp/w.h5', 'w') as f:
    f['model/layer_1/weights'] = np.zeros((30, 785), np.float32); f['model/layer_1/biases'] = np.zeros(30, np.float32)"
expect 2 "/model/layer_1/weights has shape 30x785, the network (--sizes) needs 30x784" -n 2 "$NNDL_TRAIN" "${A[@]}" \
  --epochs 1 --out "$tmp/i4.h5" --init-from "$tmp/w.h5"
$PY -c "
import h5py, numpy as np
r = np.random.default_rng(5)
with h5py.File('$tmp/w.h5', 'w') as f:
    for k, (o, i) in enumerate([(30, 784), (10, 30)], 1):
        f[f'model/layer_{k}/weights'] = r.normal(0, 0.05, (o, i)).astype(np.float32)
        f[f'model/layer_{k}/biases'] = r.normal(0, 1, o).astype(np.float32)"
t -n 2 "$NNDL_TRAIN" "${A[@]}" --epochs 1 --out "$tmp/i5.h5" --init-from "$tmp/w.h5" && $PY -c "
import h5py, numpy as np
a, b = h5py.File('$tmp/w.h5', 'r'), h5py.File('$tmp/i5.h5', 'r')
assert np.array_equal(a['model/layer_1/weights'][...], b['history/layer_1/weights'][0])
assert not np.array_equal(a['model/layer_1/weights'][...], b['model/layer_1/weights'][...])" \
  && pass "--init-from an h5py-made file: training starts from its weights" || fail "--init-from good file: $(tail -3 "$tmp/out")"

# --out: a directory that does not exist, one that exists but is not writable (as nobody: root ignores modes)
expect 2 "directory $tmp/nope does not exist" -n 2 "$NNDL_TRAIN" "${A[@]}" --out "$tmp/nope/r.h5"
expect 2 "a run is already there; continue it with --resume" -n 2 "$NNDL_TRAIN" "${A[@]}" --out "$tmp/ref.h5"
mkdir -m 755 "$tmp/ro"
setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp "$MPIEXEC" --oversubscribe -n 2 "$NNDL_TRAIN" "${A[@]}" \
  --out "$tmp/ro/r.h5" >"$tmp/out" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "cannot create files in $tmp/ro: Permission denied" "$tmp/out" && ! grep -q "^epoch" "$tmp/out" \
  && pass "as nobody, --out in a read-only directory fails before training" || fail "unwritable --out: $rc $(tail -3 "$tmp/out")"

# NaN or Inf (eta far too large): detected at the step, nothing of it applied, last checkpoint kept
N=(--sizes 784,30,10 --act relu --cost log-likelihood --init nielsen --eta 1e10 --train-samples 2000 --epochs 2 --probe 0
   --data "$NNDL_TEST_DATA" --no-progress)
t -n 2 "$NNDL_TRAIN" "${N[@]}" --out "$tmp/nan.h5" --checkpoint-every-steps 1; rc=$?
[ $rc -eq 1 ] && grep -q "error: non-finite cost (cost -\?nan) at epoch 1, step 3 of the epoch: the learning rate is probably too large" "$tmp/out" \
  && $PY -c "
import h5py, numpy as np
f = h5py.File('$tmp/nan.h5', 'r')
assert f.attrs['status'] in (b'failed', 'failed') and f.attrs['exit_status'] == 1
assert np.isfinite(f['model/layer_1/weights'][...]).all(), 'the failed step was not applied'
assert f['checkpoint'].attrs['step'] == 2, f['checkpoint'].attrs['step']" \
  && pass "NaN: exit 1 at epoch 1 step 3, named; the run file says failed, its model is finite, the step-2 checkpoint kept" \
  || fail "NaN stop: $rc $(grep error "$tmp/out")"
t -n 2 "$NNDL_TRAIN" "${N[@]}" --epochs 1 --out "$tmp/nan2.h5" --on-nan skip-batch --log "$tmp/nan2.jsonl"; rc=$?
[ $rc -eq 0 ] && $PY -c "import json; r = json.loads(open('$tmp/nan2.jsonl').readline()); assert r['skipped_batches'] > 0, r" \
  && pass "--on-nan skip-batch: goes on, counts the skipped batches ($(grep -o 'skipped_batches":[0-9]*' "$tmp/nan2.jsonl"))" \
  || fail "skip-batch: $rc $(tail -3 "$tmp/out")"

# disk full during a checkpoint (a 4 MiB tmpfs), as an unprivileged user (nobody), as on a cluster:
# clear error, the previous checkpoint stays intact, the run resumes once there is room
mkdir "$tmp/full"
nob() { setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp timeout 120 "$MPIEXEC" --oversubscribe "$@" \
          >"$tmp/out" 2>&1; }
if mount -t tmpfs -o size=4m,uid=65534,gid=65534,mode=755 tmpfs "$tmp/full" 2>/dev/null; then
  B=("${A[@]}" --probe 0 --history-every 0)
  nob -n 2 "$NNDL_TRAIN" "${B[@]}" --epochs 3 --out "$tmp/full/r.h5" --stop-after-steps 120; rc0=$?
  t -n 2 "$NNDL_TRAIN" "${B[@]}" --epochs 3 --out "$tmp/ref2.h5"
  setpriv --reuid=65534 --regid=65534 --clear-groups dd if=/dev/zero of="$tmp/full/filler" bs=64k status=none 2>/dev/null
  sum_before=$(sha256sum "$tmp"/full/r.h5.d/ckpt-*.h5 | sha256sum)
  nob -n 2 "$NNDL_TRAIN" --resume "$tmp/full/r.h5"; rc=$?
  [ $rc0 -eq 75 ] && [ $rc -eq 1 ] && grep -q "error:.*\(disk full\|No space left\)" "$tmp/out" \
    && [ "$(sha256sum "$tmp"/full/r.h5.d/ckpt-*.h5 | sha256sum)" = "$sum_before" ] \
    && pass "disk full (as nobody): exit 1, the checkpoint untouched, $(grep -m1 -o 'error:.*' "$tmp/out" | cut -c1-120)" \
    || fail "disk full: exit $rc0/$rc $(tail -3 "$tmp/out")"
  rm -f "$tmp/full/filler"
  nob -n 2 "$NNDL_TRAIN" --resume "$tmp/full/r.h5" && grep -q "resumed after epoch 0, step 120" "$tmp/out" \
    && $SAME "$tmp/ref2.h5" "$tmp/full/r.h5" >/dev/null \
    && pass "after the disk was freed: resumed from the intact checkpoint and ended exactly" \
    || fail "resume after disk full: $(tail -3 "$tmp/out")"
  umount "$tmp/full"
elif [ "${CI:-}" = true ]; then fail "cannot mount a tmpfs for the disk-full test (CI needs it)"
else echo "skip - disk full: cannot mount a tmpfs here (not root?)"; fi

# the reproducible mode finds a non-finite step the same way (its two reductions carry the flag)
t -n 3 "$NNDL_TRAIN" "${N[@]}" --reproducible --epochs 1 --out "$tmp/nan3.h5"; rc=$?
[ $rc -eq 1 ] && grep -q "error: non-finite gradient or cost.* at epoch 1, step 3 of the epoch" "$tmp/out" \
  && pass "--reproducible: NaN found at epoch 1 step 3, exit 1" || fail "reproducible NaN: $rc $(grep error "$tmp/out")"
finish
