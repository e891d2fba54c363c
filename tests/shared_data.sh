#!/usr/bin/env bash
# One copy of the data set per node: the ranks of a node share node rank 0's pixels (an MPI
# shared-memory window). NNDL_PSEUDO_NODES=2 splits this machine into two pseudo-nodes by rank
# parity, so the several-node path runs too; either way the model is the one rank's.
. "$(dirname "$0")/lib.sh"
need_mnist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=/usr/bin/python3; SAME="$PY $(dirname "$0")/same_model.py"
A=(--sizes 784,30,10 --init nielsen --eta 0.5 --epochs 1 --train-samples 2000 --probe 100 --data "$NNDL_TEST_DATA" --no-progress)
mpi -n 1 "$NNDL_TRAIN" "${A[@]}" --out "$tmp/one.h5" >"$tmp/out" 2>&1 || fail "1 rank: $(tail -3 "$tmp/out")"
mpi -n 4 "$NNDL_TRAIN" "${A[@]}" --out "$tmp/node.h5" >"$tmp/out" 2>&1
grep -q "one copy per node, shared by 4 ranks" "$tmp/out" && $SAME "$tmp/one.h5" "$tmp/node.h5" 1e-5 >"$tmp/cmp" \
  && pass "4 ranks on one node share one copy; model within 1e-5 of 1 rank" || fail "one node: $(cat "$tmp/out" "$tmp/cmp")"
NNDL_PSEUDO_NODES=2 mpi -n 4 "$NNDL_TRAIN" "${A[@]}" --out "$tmp/two.h5" >"$tmp/out" 2>&1
grep -q "one copy per node, shared by 2 ranks" "$tmp/out" && $SAME "$tmp/one.h5" "$tmp/two.h5" 1e-5 >"$tmp/cmp" \
  && pass "2 pseudo-nodes of 2 ranks: two copies; model within 1e-5 of 1 rank" || fail "pseudo-nodes: $(cat "$tmp/out" "$tmp/cmp")"
NNDL_PSEUDO_NODES=2 mpi -n 4 "$NNDL_TRAIN" "${A[@]}" --out "$tmp/bad.h5" --data "$tmp/nodata" >"$tmp/out" 2>&1; rc=$?
[ $rc -eq 2 ] && [ "$(grep -c 'nndl-train: error:' "$tmp/out")" = 1 ] && grep -q "fetch them with" "$tmp/out" \
  && pass "missing data on two pseudo-nodes: one error line, exit 2" || fail "missing data: $rc $(cat "$tmp/out")"
finish
