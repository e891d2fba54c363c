#!/usr/bin/env bash
# Crash safety: kill -9 the whole job (mpirun and its ranks) at random moments, many of them during
# checkpoint writes; after each kill the run file opens, its last checkpoint loads, the run resumes
# and ends bit-identical to an uninterrupted run. KILLS (default 20) sets how many. The run takes about
# 1.5 s, a third of it writing checkpoints every 20 steps, so about a third of the kills hit a write.
. "$(dirname "$0")/lib.sh"
need_mnist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=/usr/bin/python3; SAME="$PY $(dirname "$0")/same_model.py"
A=(--sizes 784,100,10 --init nielsen --eta 0.5 --train-samples 2000 --probe 1000 --epochs 6 --checkpoint-every-steps 20
   --data "$NNDL_TEST_DATA" --no-progress)
mpi -n 2 "$NNDL_TRAIN" "${A[@]}" --out "$tmp/ref.h5" >"$tmp/out" 2>&1 || fail "reference run: $(tail -3 "$tmp/out")"
kills=${KILLS:-20} killed_in_write=0 seed=$$
for i in $(seq 1 "$kills"); do
  run=$tmp/run$i.h5
  setsid "$MPIEXEC" --oversubscribe -n 2 "$NNDL_TRAIN" "${A[@]}" --out "$run" >"$tmp/out" 2>&1 &
  pid=$!
  delay=$(awk -v s=$((seed + i)) 'BEGIN { srand(s); printf "%.2f", 0.3 + 1.2 * rand() }')
  sleep "$delay"
  # Open MPI gives each rank its own process group, so kill the whole session (mpirun and every
  # rank) at one instant, as a node failure would
  pkill -9 -s "$pid"; wait "$pid" 2>/dev/null
  alive() { ps -o stat= -s "$pid" | grep -qv '^Z'; } # killed ranks may stay zombies: no reaper here
  for _ in 1 2 3 4 5 6 7 8 9 10; do alive || break; sleep 0.1; done
  if alive; then fail "kill $i: processes survived kill -9"; pkill -9 -s "$pid"; fi
  if ls "$run.d" 2>/dev/null | grep -q '\.tmp' || [ -e "$run.tmp" ]; then
    killed_in_write=$((killed_in_write + 1)); when=" (during a write)"; else when=""; fi
  if [ ! -e "$run.d/MANIFEST.json" ]; then   # killed before the run file existed: start it again
    mpi -n 2 "$NNDL_TRAIN" "${A[@]}" --out "$run" --force >"$tmp/out" 2>&1 || fail "kill $i: restart failed"
    note="before the run file existed; started again"
  else
    $PY -c "import h5py,sys; f=h5py.File(sys.argv[1],'r'); f['checkpoint/model/layer_1/weights'][...] if 'checkpoint' in f else None" \
      "$run" 2>"$tmp/err" || { fail "kill $i at ${delay}s: the run file does not open: $(cat "$tmp/err")"; continue; }
    mpi -n 2 "$NNDL_TRAIN" --resume "$run" >"$tmp/out" 2>&1 || { fail "kill $i: resume failed: $(tail -3 "$tmp/out")"; continue; }
    note=$(grep -o 'resumed after epoch [0-9]*, step [0-9]*' "$tmp/out" || echo "started over (no checkpoint yet)")
  fi
  if $SAME "$tmp/ref.h5" "$run" >"$tmp/cmp"; then pass "kill -9 at ${delay}s${when}: $note; final model bit-identical"
  else fail "kill $i at ${delay}s: $note; final model differs: $(cat "$tmp/cmp")"; fi
  rm -rf "$run" "$run.d"
done
# one rank dies mid-epoch (kill -9 of rank 1 alone): the job ends within seconds, naming the rank, with no
# rank left waiting in a collective; the run resumes from its last checkpoint
run=$tmp/one.h5
"$MPIEXEC" --oversubscribe -n 3 "$NNDL_TRAIN" "${A[@]}" --epochs 40 --out "$run" >"$tmp/one.out" 2>&1 &
launcher=$!
for _ in $(seq 1 300); do grep -q '^epoch   1/' "$tmp/one.out" && break; sleep 0.1; done
victim=$(for p in $(pgrep -f -- "--out $run"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = nndl-train ] && echo "$p"; done | sed -n 2p)
t0=$(date +%s.%N); kill -9 "$victim"
for _ in $(seq 1 300); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if kill -0 "$launcher" 2>/dev/null; then fail "a rank died and the job still runs after ${took}s (hang)"; pkill -9 -f -- "--out $run"
else
  wait "$launcher"; rc=$?
  left=$(for p in $(pgrep -f -- "--out $run"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = nndl-train ] && echo "$p"; done | wc -l)
  [ $rc -ne 0 ] && [ "$left" -eq 0 ] && grep -q "process rank [0-9]* with PID .* exited on signal 9" "$tmp/one.out" \
    && pass "a rank killed mid-epoch: the job ended in ${took}s (exit $rc), naming it: $(grep -o 'process rank [0-9]*' "$tmp/one.out" | head -1)" \
    || fail "rank death: exit $rc, $left ranks left: $(tail -5 "$tmp/one.out")"
  mpi -n 2 "$NNDL_TRAIN" --resume "$run" >"$tmp/out" 2>&1 && pass "and the run resumes from its last checkpoint to its end" \
    || fail "resume after a rank died: $(tail -3 "$tmp/out")"
fi
echo "kills that left a half-written file behind (killed during a write): $killed_in_write of $kills"
finish
