#!/usr/bin/env bash
# Slurm job scripts on a real one-node Slurm cluster, brought up and torn down here (tests/slurm/).
#   slurm.sh train | preempt | timelimit | grid
# Without Slurm installed the test is skipped (exit 77), except with CI=true, where that fails.
. "$(dirname "$0")/lib.sh"
need_mnist
here=$(cd "$(dirname "$0")" && pwd); top=$(dirname "$here"); S=$here/slurm
tmp=$(mktemp -d); chmod 755 "$tmp"; cd "$tmp"
export NNDL_SLURM_DIR=$tmp/slurm NNDL_TRAIN NNDL_PLOT=${NNDL_PLOT:-$top/tools/nndl-plot}
trap '"$S/cluster-down" --purge >/dev/null 2>&1; cd /; rm -rf "$tmp"' EXIT
if ! up=$("$S/cluster-up" 2>&1); then
  if [ "${CI:-}" != true ] && ! [ -x /usr/sbin/slurmctld ]; then echo "skip: Slurm is not installed ($up)"; exit 77; fi
  fail "cluster-up: $up"; finish; exit 1
fi
export SLURM_CONF=$NNDL_SLURM_DIR/etc/slurm.conf
PY=/usr/bin/python3; SAME="$PY $here/same_model.py"
D=(--data "$NNDL_TEST_DATA" --init nielsen --eta 0.5 --probe 100)
log() { cat "$tmp/$1" 2>/dev/null; }
job() { sbatch --parsable "$@"; }
waitjob() { "$S/wait-job" "$@"; }
t0=$(date +%s.%N); elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

case "${1:?which test}" in
train)
  id=$(job -n 2 -o "$tmp/n2.out" "$top/jobs/train.sbatch" "${D[@]}" --train-samples 3000 --epochs 2 --out "$tmp/n2.h5")
  waitjob "$id" 300 >/dev/null && grep -q "done: $tmp/n2.h5" "$tmp/n2.out" && $PY -c "import h5py; f = h5py.File('$tmp/n2.h5', 'r'); assert f.attrs['mpi_world_size'] == 2 and f.attrs['status'] in (b'completed', 'completed')" \
    && pass "train.sbatch, 2 tasks, srun --mpi=pmix: exit 0, a completed run file" || fail "2 tasks: $(log n2.out)"
  id=$(job -n 8 --overcommit -o "$tmp/n8.out" "$top/jobs/train.sbatch" "${D[@]}" --train-samples 3000 --epochs 2 --out "$tmp/n8.h5")
  waitjob "$id" 300 >/dev/null && $PY -c "import h5py; assert h5py.File('$tmp/n8.h5', 'r').attrs['mpi_world_size'] == 8" \
    && $SAME "$tmp/n2.h5" "$tmp/n8.h5" 1e-5 >"$tmp/cmp" && pass "8 tasks on 2 CPUs (--overcommit): same model within 1e-5: $(tr '\n' ' ' <"$tmp/cmp")" \
    || fail "8 tasks: $(log n8.out) $(cat "$tmp/cmp" 2>/dev/null)"
  id=$(job -n 2 -o "$tmp/mr.out" --export=ALL,NNDL_LAUNCHER=mpirun "$top/jobs/train.sbatch" "${D[@]}" --train-samples 3000 --epochs 2 --out "$tmp/mr.h5")
  waitjob "$id" 300 >/dev/null && $SAME "$tmp/n2.h5" "$tmp/mr.h5" >/dev/null \
    && pass "NNDL_LAUNCHER=mpirun inside the allocation: the same model, bit for bit" || fail "mpirun launcher: $(log mr.out)"
  id=$(job -n 2 -o "$tmp/bad.out" "$top/jobs/train.sbatch" "${D[@]}" --eta 0)
  waitjob "$id" 120 >/dev/null; state=$(scontrol -o show job "$id" | grep -o 'JobState=[A-Z]*')
  [ "$state" = JobState=FAILED ] && grep -q "nndl-train: error: --eta: expected a learning rate > 0, found '0'" "$tmp/bad.out" \
    && pass "a flag nndl-train rejects: the job fails fast, the job log has the error" || fail "bad flag: $state $(log bad.out)"
  ;;
preempt)
  A=("${D[@]}" --sizes 784,100,10 --train-samples 20000 --epochs 8)
  ref=$(job -n 2 -o "$tmp/ref.out" "$top/jobs/train.sbatch" "${A[@]}" --out "$tmp/ref.h5")
  waitjob "$ref" 300 >/dev/null || fail "uninterrupted run: $(log ref.out)"
  id=$(job -n 2 -o "$tmp/p.out" "$top/jobs/train.sbatch" "${A[@]}" --out "$tmp/p.h5")
  until grep -q '^epoch   2/' "$tmp/p.out" 2>/dev/null; do sleep 0.1; [ -n "$(squeue -h -j "$id")" ] || break; done
  scancel --signal=USR1 --batch "$id"; sent=$(elapsed)
  waitjob "$id" 300 >/dev/null; restarts=$(scontrol -o show job "$id" | grep -o 'Restarts=[0-9]*')
  # the signal lands in epoch 3 or, when a fast epoch ends before the ranks see it, at the start of epoch 4
  grep -Eq "stopped at epoch [34], step [0-9]+ by SIGUSR1" "$tmp/p.out" && grep -q "requeueing" "$tmp/p.out" \
    && grep -q "resuming $tmp/p.h5 (restart 1)" "$tmp/p.out" && [ "$restarts" = Restarts=1 ] \
    && pass "USR1 at ${sent}s: checkpoint, exit 75, requeue, resume with SLURM_RESTART_COUNT=1, done at $(elapsed)s" \
    || fail "preemption: $restarts $(log p.out)"
  $SAME "$tmp/ref.h5" "$tmp/p.h5" >"$tmp/cmp" && pass "preempted and resumed = uninterrupted, bit for bit" \
    || fail "preempted run differs: $(cat "$tmp/cmp")"
  ;;
timelimit)
  # Slurm checks limits and --signal warnings every 30 s, so this takes 1.5-2 minutes (slow label)
  id=$(job -n 2 --time=1 --signal=B:USR1@50 -o "$tmp/tl.out" "$top/jobs/train.sbatch" "${D[@]}" --sizes 784,100,10 \
       --epochs 250 --train-samples 20000 --history-every 0 --probe 0 --out "$tmp/tl.h5")
  waitjob "$id" 400 >/dev/null; rc=$?; restarts=$(scontrol -o show job "$id" | grep -o 'Restarts=[0-9]*')
  [ $rc -eq 0 ] && grep -q "by SIGUSR1" "$tmp/tl.out" && [ "${restarts#Restarts=}" -ge 1 ] \
    && $PY -c "import h5py; f = h5py.File('$tmp/tl.h5', 'r'); assert len(f['metrics/epoch']) == 250, len(f['metrics/epoch'])" \
    && pass "time limit 1 min, USR1 50 s before: checkpointed before the limit, requeued ($restarts), completed 250 epochs (about 80 s of training) in $(elapsed)s" \
    || fail "time limit: rc $rc $restarts $(grep -v '^epoch' "$tmp/tl.out")"
  ;;
grid)
  printf '# a 2 x 2 grid\nbatch = 10 20\neta = 0.5 3.0\n' >"$tmp/grid.txt"
  G=(--data "$NNDL_TEST_DATA" --train-samples 2000 --epochs 1 --probe 0 --history-every 0)
  "$top/jobs/submit-grid" "$tmp/grid.txt" --out "$tmp/g" "${G[@]}" >"$tmp/submit.out" || fail "submit-grid: $(log submit.out)"
  read -r array summary <"$tmp/g/jobs"
  waitjob "$array" 300 >/dev/null && waitjob "$summary" 120 >/dev/null && [ "$(ls "$tmp"/g/batch*-eta*.h5 | wc -l)" = 4 ] \
    && [ -s "$tmp/g/grid.png" ] && [ "$(grep -c '^ *[0-9]' "$tmp/g/grid.txt")" = 4 ] \
    && pass "2x2 grid as a job array: 4 run files, then the afterok summary (heatmap + sorted table) in $(elapsed)s" \
    || fail "grid: $(cat "$tmp"/nndl-grid*.out "$tmp"/g/grid.txt 2>/dev/null | tail -20)"
  printf 'batch = 10\neta = 0 3.0\n' >"$tmp/bad.txt" # eta 0 passes the grid file, nndl-train rejects it
  "$top/jobs/submit-grid" "$tmp/bad.txt" --out "$tmp/b" "${G[@]}" >/dev/null
  read -r array summary <"$tmp/b/jobs"
  waitjob "$array" 300 >/dev/null; waitjob "$summary" 60 >/dev/null
  sstate=$(scontrol -o show job "$summary" | grep -o 'JobState=[A-Z]*')
  [ "$sstate" = JobState=CANCELLED ] && grep -q "eta: expected a learning rate > 0" "$tmp"/nndl-grid-"${array}"_0.out \
    && pass "a failing grid point: its log names the error, the summary is CANCELLED (not pending)" \
    || fail "failing point: summary $sstate; $(cat "$tmp"/nndl-grid-"${array}"_*.out 2>/dev/null | head)"
  printf 'batch = 10\neta = 0.5\nlearning-rate = 3\n' >"$tmp/malformed.txt"
  "$top/jobs/submit-grid" "$tmp/malformed.txt" --out "$tmp/m" 2>"$tmp/err"; rc=$?
  [ $rc -eq 2 ] && grep -q "malformed.txt:3: expected 'batch = N N ...' or 'eta = X X ...', found 'learning-rate = 3'" "$tmp/err" \
    && pass "a malformed grid file names its line: $(cat "$tmp/err")" || fail "malformed grid: $rc $(cat "$tmp/err")"
  # the same grid without Slurm
  "$top/tools/grid-local" "$tmp/grid.txt" --out "$tmp/local" --np 2 "${G[@]}" >"$tmp/local.out" 2>&1 \
    && [ "$(ls "$tmp"/local/batch*-eta*.h5 | wc -l)" = 4 ] && [ -s "$tmp/local/grid.png" ] \
    && diff <(awk 'NR > 1 && $1 ~ /^[0-9]/ {print $1, $2, $3}' "$tmp/g/grid.txt") \
            <(awk 'NR > 1 && $1 ~ /^[0-9]/ {print $1, $2, $3}' "$tmp/local/grid.txt") >/dev/null \
    && pass "tools/grid-local: the same 4 runs and the same table without Slurm" || fail "grid-local: $(tail "$tmp/local.out")"
  ;;
*) echo "slurm.sh: unknown test '$1'"; exit 2 ;;
esac
finish
