# Helpers for the shell tests: sourced, not run. Expects NNDL_TRAIN, MPIEXEC and NNDL_TEST_DATA.
set -u
fails=0 passes=0
pass() { passes=$((passes + 1)); echo "ok   - $*"; }
fail() { fails=$((fails + 1)); echo "FAIL - $*"; }
finish() { echo "$passes passed, $fails failed"; [ "$fails" -eq 0 ]; }
mpi() { timeout 120 "$MPIEXEC" --oversubscribe "$@"; }
need_mnist() {
  if [ ! -e "$NNDL_TEST_DATA/train-images-idx3-ubyte" ] && [ ! -e "$NNDL_TEST_DATA/train-images-idx3-ubyte.gz" ]; then
    echo "MNIST is not in $NNDL_TEST_DATA: run tools/fetch-data mnist first (the tests use the real data)"
    echo "0 passed, 1 failed"
    exit 1
  fi
}
