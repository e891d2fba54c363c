#!/usr/bin/env bash
# Real MNIST, real mpirun: 784-30-10 with --init nielsen reaches >= 92% validation accuracy after
# one epoch on 2 ranks, and the JSON Lines log carries the promised keys.
. "$(dirname "$0")/lib.sh"
need_mnist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp" # runs/ (the default run files) lands here
PY=/usr/bin/python3

mpi -n 2 "$NNDL_TRAIN" --sizes 784,30,10 --init nielsen --epochs 1 --seed 1 --data "$NNDL_TEST_DATA" \
  --log "$tmp/log.jsonl" >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
[ $rc -eq 0 ] && pass "training exits 0" || fail "training exit $rc"
acc=$($PY -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1])][0]["val_accuracy"])' "$tmp/log.jsonl")
if $PY -c "import sys; sys.exit(0 if $acc >= 0.92 else 1)"; then pass "validation accuracy $acc >= 0.92"
else fail "validation accuracy $acc < 0.92"; fi

$PY - "$tmp/log.jsonl" <<'PYEOF' && pass "JSON lines carry epoch, train_cost, val_accuracy, seconds, samples_per_s; then test_accuracy" || fail "JSON log keys"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2, rows
e, last = rows
for k in ("epoch", "train_cost", "val_accuracy", "seconds", "samples_per_s"):
    assert k in e, k
assert e["epoch"] == 1 and 0 < e["train_cost"] < 1 and 0 < e["seconds"] and e["samples_per_s"] > 1000
assert 0.9 < last["test_accuracy"] <= 1.0, last
PYEOF

# --log - : JSON lines on stdout instead of the human lines (nothing else on stdout)
mpi -n 2 "$NNDL_TRAIN" --epochs 2 --train-samples 500 --data "$NNDL_TEST_DATA" --log - >"$tmp/stdout" 2>"$tmp/stderr"
if $PY -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; assert [x.get("epoch") for x in r[:2]]==[1,2] and "test_accuracy" in r[2] and len(r)==3' "$tmp/stdout"; then
  pass "--log - writes only JSON lines to stdout"; else fail "--log - output: $(head -c 400 "$tmp/stdout")"; fi

# the human lines: one per epoch on rank 0 only (2 ranks must not print twice), no progress bar off a terminal
n=$(grep -c '^epoch ' "$tmp/out")
[ "$n" -eq 1 ] && pass "one human line per epoch, printed once" || fail "$n epoch lines for 1 epoch"
if grep -q $'\r' "$tmp/out"; then fail "a progress bar was drawn into a non-terminal log"; else pass "no progress bar off a terminal"; fi
# --verbose: every rank's binding (hwloc), printed once by rank 0; more ranks than cores: one warning
cores=$(/usr/bin/python3 -c "import os; print(len(os.sched_getaffinity(0)))")
mpi -n $((cores + 1)) "$NNDL_TRAIN" --verbose --epochs 1 --train-samples 200 --data "$NNDL_TEST_DATA" --out "$tmp/v.h5" \
  >"$tmp/v.out" 2>&1
n=$(grep -c '^rank [0-9]*: node rank' "$tmp/v.out"); w=$(grep -c 'warning: .* ranks share .* cores' "$tmp/v.out")
[ "$n" -eq $((cores + 1)) ] && [ "$w" -eq 1 ] && pass "--verbose prints $n bindings; oversubscription warned once" \
  || fail "--verbose/oversubscription: $n bindings, $w warnings: $(head -5 "$tmp/v.out")"
finish
