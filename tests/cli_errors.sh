#!/usr/bin/env bash
# Every bad input of nndl-train ends, on 2 ranks, with ONE one-line error naming the problem and
# the fix, the expected exit status, and no hang.
. "$(dirname "$0")/lib.sh"
need_mnist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp" # runs/ (the default run files) lands here

# expect STATUS 'message part' ARGS...: run on 2 ranks
expect() {
  local want=$1 msg=$2; shift 2
  mpi -n 2 "$NNDL_TRAIN" --epochs 1 --train-samples 100 --data "$NNDL_TEST_DATA" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$? n
  n=$(grep -c 'nndl-train: error:' "$tmp/err")
  if [ "$rc" -ne "$want" ]; then fail "$* -> exit $rc, expected $want ($(head -c 300 "$tmp/err"))"; return; fi
  if [ "$n" -ne 1 ]; then fail "$* -> $n error lines, expected exactly 1: $(cat "$tmp/err")"; return; fi
  if ! grep -qF -- "$msg" "$tmp/err"; then fail "$* -> message lacks '$msg': $(cat "$tmp/err")"; return; fi
  pass "$* -> $want: $(grep 'error:' "$tmp/err" | head -c 160)"
}

expect 2 "unknown flag '--bogus'" --bogus
expect 2 "--eta: expected a learning rate > 0, found '0'" --eta 0
expect 2 "--eta: expected a learning rate > 0, found '-3'" --eta -3
expect 2 "--batch: expected a whole number from 1" --batch 0
expect 2 "the first size must be 784 and the last 10" --sizes 785,30,10
expect 2 "the first size must be 784 and the last 10" --sizes 784,30,9
expect 2 "--train-samples 60000: only 50000 samples are left" --train-samples 60000
# chapter 3 flags
expect 2 "--dropout: expected a probability in [0, 1), found '1'" --dropout 1
expect 2 "--dropout: expected a probability in [0, 1), found '-0.1'" --dropout -0.1
expect 2 "--l2: expected a lambda >= 0, found '-5'" --l2 -5
expect 2 "--l1: expected a lambda >= 0, found '-1'" --l1 -1
expect 2 "--momentum: expected a value in [0, 1), found '1'" --momentum 1
expect 2 "--momentum: expected a value in [0, 1), found '-0.5'" --momentum -0.5
expect 2 "--lr-decay: expected a factor > 1, found '1'" --lr-decay 1
expect 2 "--lr-min-ratio: expected a ratio >= 1, found '0.5'" --lr-min-ratio 0.5
expect 2 "--patience: expected a whole number from 0" --patience -1
expect 2 "--act: 4 entries for 2 hidden layers" --sizes 784,30,20,10 --act relu,relu,relu,relu
expect 2 "--act: expected sigmoid, tanh or relu" --act swish
expect 2 "--act: the output layer is softmax with --cost log-likelihood, found sigmoid" --sizes 784,30,10 --act relu,sigmoid --cost log-likelihood
expect 2 "--act: the output layer is sigmoid with --cost cross-entropy, found softmax" --sizes 784,30,10 --act relu,softmax --cost cross-entropy
expect 2 "--act: softmax only as the output layer" --act softmax
expect 2 "--monitor: expected train, test, speed or a list of them" --monitor validation
expect 2 "--augment: expected none or shift" --augment rotate
expect 2 "--on-nan: expected stop or skip-batch, found 'ignore'" --on-nan ignore
expect 2 "--overlap: expected auto, on or off, found 'maybe'" --overlap maybe
expect 2 "--reduce: expected auto, mpi or shared, found 'nccl'" --reduce nccl
expect 2 "--chunk 5: chunks are the --reproducible mode's" --chunk 5
# flags that contradict each other (the step chooser names both)
expect 2 "--reduce shared with --overlap on" --reduce shared --overlap on
expect 2 "--reduce shared with --reproducible" --reproducible --reduce shared
expect 2 "--probe-layers: layer 3 does not exist" --probe-layers 3
# conv nets: every bad --layers spec, one line naming the token
expect 2 "--dropout-conv 0.5: the net has no conv layer" --sizes 784,30,10 --dropout-conv 0.5
expect 2 "--dropout-conv: expected a probability in [0, 1), found '1'" --layers conv:4x5x5,pool:2x2,dense:10 --dropout-conv 1
expect 2 "--layers: 'maxpool:2x2' is not conv:FxKxK, pool:PxP or dense:N" --layers conv:20x5x5,maxpool:2x2,dense:10
expect 2 "--layers: pool:2x2 must come right after a conv token" --layers dense:30,pool:2x2,dense:10
expect 2 "conv:20x30x30): the 30x30 kernel is larger than its 28x28 input" --layers conv:20x30x30,dense:10
expect 2 "conv:20x5x5,pool:5x5): pool 5x5 does not divide the 24x24 output" --layers conv:20x5x5,pool:5x5,dense:10
expect 2 "a conv layer follows the input or another conv layer" --layers dense:30,conv:4x3x3,dense:10
expect 2 "--layers: conv:0x5x5: expected F filters" --layers conv:0x5x5,dense:10
expect 2 "must end with the output layer, dense:10" --layers conv:20x5x5,pool:2x2
expect 2 "mnist has 10 classes, so the last layer must be dense:10" --layers conv:20x5x5,pool:2x2,dense:7
expect 2 "--sizes with --layers: both give the net" --sizes 784,30,10 --layers dense:30,dense:10
expect 2 "--layers: conv:100000x5x5: expected F filters (1 to 4096)" --layers conv:100000x5x5,dense:10
expect 2 "--layers: pool:2x3: expected a square PxP pool" --layers conv:20x5x5,pool:2x3,dense:10
expect 2 "parameters; at most 2^31 are supported" --layers conv:20x5x5,pool:2x2,dense:16777216,dense:10

# data problems: a copy of MNIST with one file spoiled at a time
D=$NNDL_TEST_DATA
find_file() { if [ -e "$D/$1" ]; then echo "$D/$1"; else echo "$D/$1.gz"; fi; }
fresh() { rm -rf "$tmp/d"; mkdir "$tmp/d"; for f in train-images-idx3-ubyte train-labels-idx1-ubyte \
  t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do zcat -f "$(find_file $f)" >"$tmp/d/$f"; done; }

expect 2 "fetch them with: tools/fetch-data mnist --dir $tmp/none" --data "$tmp/none"
fresh; rm "$tmp/d/t10k-labels-idx1-ubyte"
expect 2 "$tmp/d/t10k-labels-idx1-ubyte: No such file or directory" --data "$tmp/d"
fresh; cp "$tmp/d/train-labels-idx1-ubyte" "$tmp/d/train-images-idx3-ubyte"
expect 2 "IDX magic 0x00000801, expected 0x00000803" --data "$tmp/d"
fresh; head -c 1000000 "$tmp/d/train-images-idx3-ubyte" >"$tmp/x"; mv "$tmp/x" "$tmp/d/train-images-idx3-ubyte"
expect 2 "truncated: the pixel data needs 47040000 bytes, found 999984" --data "$tmp/d"
fresh; cp "$tmp/d/t10k-labels-idx1-ubyte" "$tmp/d/train-labels-idx1-ubyte"
expect 2 "10000 labels, but the image file has 60000 images" --data "$tmp/d"
fresh; printf '\x0c' | dd of="$tmp/d/train-labels-idx1-ubyte" bs=1 seek=$((8 + 123)) conv=notrunc status=none
expect 2 "label 12 of item 123 is out of range (expected 0 to 9)" --data "$tmp/d"
fresh; gzip "$tmp/d/t10k-images-idx3-ubyte"; printf 'JUNKJUNK' | dd of="$tmp/d/t10k-images-idx3-ubyte.gz" bs=1 \
  seek=5000 conv=notrunc status=none
expect 2 "t10k-images-idx3-ubyte.gz: cannot read" --data "$tmp/d"

expect 2 "--log $tmp/no/such/dir/x.jsonl: cannot open for writing" --log "$tmp/no/such/dir/x.jsonl"

# --help and --version succeed and say what they should
if "$NNDL_TRAIN" --help | grep -q -- '--train-samples N'; then pass "--help lists the flags"; else fail "--help"; fi
if "$NNDL_TRAIN" --version | grep -Eq '^nndl-train [0-9]+\.[0-9]+'; then pass "--version"; else fail "--version"; fi
finish
