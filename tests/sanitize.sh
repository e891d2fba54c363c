#!/usr/bin/env bash
# The sanitizer build (cmake -DNNDL_SANITIZE=ON: AddressSanitizer + UndefinedBehaviorSanitizer): the unit
# tests and the fuzz regression corpus with leak checks, then real mpirun -np 2 runs (training with dropout/momentum/augmentation and
# mid-epoch checkpoints, a --reproducible run on 3 ranks, conv nets on 2 and 3 ranks, a resume, nndl-eval) with detect_leaks=0 (Open MPI's unloaded plugins leak
# about 120 KB per process, which suppressions cannot name), and nndl-pack with leak checks.
#   tests/sanitize.sh [BUILD_DIR]      (default build-asan; needs MNIST in ${NNDL_DATA:-data}/mnist)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd); b=${1:-$top/build-asan}; data=${NNDL_DATA:-$top/data}/mnist
cmake -S "$top" -B "$b" -DCMAKE_BUILD_TYPE=Debug -DNNDL_SANITIZE=ON >/dev/null
cmake --build "$b" -j2 >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
fails=0 passes=0
check() { local what=$1; shift; if "$@" >"$b/san.out" 2>&1; then passes=$((passes + 1)); echo "ok   - $what";
          else fails=$((fails + 1)); echo "FAIL - $what"; tail -30 "$b/san.out"; fi; }
for t in net conv data rng dist options fixed config; do check "unit_$t under ASan+UBSan (leaks checked)" "$b/tests/test_$t" --jobs 1; done
for f in idx options runfile manifest; do
  check "fuzz regression corpus $f under ASan+UBSan (leaks checked)" env NNDL_READER_TIMEOUT=10 \
    "$b/tests/fuzz/replay_$f" "$top/tests/fuzz/corpus/$f"
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
M=(mpirun --oversubscribe -np 2 -x ASAN_OPTIONS -x UBSAN_OPTIONS)
check "mpirun -np 2 training under ASan+UBSan" "${M[@]}" "$b/nndl-train" --data "$data" --sizes 784,30,10 --act relu \
  --cost log-likelihood --dropout 0.2 --momentum 0.5 --eta 0.05 --augment shift --epochs 2 --train-samples 3000 \
  --checkpoint-every-steps 50 --out "$tmp/s.h5" --no-progress
check "mpirun -np 3 --reproducible training under ASan+UBSan" mpirun --oversubscribe -np 3 -x ASAN_OPTIONS -x UBSAN_OPTIONS "$b/nndl-train" --data "$data" \
  --sizes 784,30,10 --dropout 0.2 --momentum 0.5 --eta 0.5 --epochs 1 --train-samples 2000 --reproducible \
  --out "$tmp/r.h5" --no-progress
check "mpirun -np 2 --reduce shared --momentum training under ASan+UBSan" "${M[@]}" "$b/nndl-train" --data "$data" \
  --sizes 784,100,10 --l2 1 --eta 0.5 --epochs 1 --train-samples 2000 --reduce shared --momentum 0.5 --out "$tmp/sh.h5" --no-progress
check "mpirun -np 2 --reduce shared --split units training under ASan+UBSan" "${M[@]}" "$b/nndl-train" --data "$data" \
  --sizes 784,100,10 --l2 1 --eta 0.5 --epochs 1 --train-samples 2000 --reduce shared --split units --dropout 0.2 --out "$tmp/su.h5" --no-progress
C=(--layers conv:6x5x5,pool:2x2,conv:8x3x3,dense:30,dense:10 --act relu --cost log-likelihood --eta 0.05 --momentum 0.5
   --dropout 0.2 --epochs 1 --train-samples 600 --val-samples 200 --probe 10 --no-progress)
check "mpirun -np 2 conv net (node-shared slots) under ASan+UBSan" "${M[@]}" "$b/nndl-train" --data "$data" "${C[@]}" \
  --out "$tmp/c.h5"
check "mpirun -np 3 conv net --split units under ASan+UBSan" mpirun --oversubscribe -np 3 -x ASAN_OPTIONS -x UBSAN_OPTIONS \
  "$b/nndl-train" --data "$data" "${C[@]}" --split units --out "$tmp/cu.h5"
check "mpirun -np 2 resume under ASan+UBSan" "${M[@]}" "$b/nndl-train" --resume "$tmp/s.h5" --epochs 3 --no-progress
check "nndl-eval under ASan+UBSan" "$b/nndl-eval" "$tmp/s.h5"
check "nndl-pack under ASan+UBSan (leaks checked)" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$b/nndl-pack" "$tmp/s.h5" "$tmp/p.h5"
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
