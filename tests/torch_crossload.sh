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
$PY "$(dirname "$0")/torch_model.py" check "$run" "$NNDL_TEST_DATA" >"$tmp/py.out" 2>&1 && pass "$(tail -1 "$tmp/py.out")" \
  || fail "torch: $(tail -15 "$tmp/py.out")"

# the book's last result is an ensemble: three seeds, nndl-eval --ensemble on 2 ranks, the same vote in torch
for sd in 1 2 3; do
  mpi -n 2 "$NNDL_TRAIN" --layers conv:6x5x5,pool:2x2,dense:30,dense:10 --act relu --cost log-likelihood \
    --init network3 --eta 0.05 --epochs 1 --train-samples 2000 --seed $sd --history-every 0 \
    --data "$NNDL_TEST_DATA" --out "$tmp/e$sd.h5" --no-progress >"$tmp/out" 2>&1 || fail "seed $sd: $(tail -2 "$tmp/out")"
done
mpi -n 2 "$NNDL_EVAL" --ensemble "$tmp/e1.h5" "$tmp/e2.h5" "$tmp/e3.h5" >"$tmp/ens.out" 2>&1 || fail "ensemble: $(cat "$tmp/ens.out")"
acc=$(sed -n 's/^ensemble of 3 .*accuracy \([0-9.]*\).*/\1/p' "$tmp/ens.out")
$PY "$(dirname "$0")/torch_model.py" ensemble "$NNDL_TEST_DATA" "$acc" "$tmp/e1.h5" "$tmp/e2.h5" "$tmp/e3.h5" \
  >"$tmp/py.out" 2>&1 && pass "$(tail -1 "$tmp/py.out") ($acc)" || fail "ensemble vote: $(tail -5 "$tmp/py.out")"
finish
