/* flags.c: every flag of nndl-train, once (see flags.h and options.h). The order is the order of
 * --help and docs/flags.md. */
#include "flags.h"

#include <stddef.h>

#include "options.h"

#define AT(field) offsetof(nndl_options, field)
#define NET       "Network and training"
#define CH3       "Improving learning (chapter 3)"
#define DATA      "Data"
#define RUN       "Run file (HDF5; layout in docs/runfile.md)"
#define OUT       "Output and resources"
#define PAR       "How the ranks share the work (docs/parallel.md)"
#define BIG       1e30

const flag nndl_flags[] = {
    /* ---- the network and its training ---- */
    {"sizes", FLAG_INTS, AT(cfg.sizes), 1, 1 << 24, .count = AT(cfg.n_sizes), .min_n = 2,
     .def = "784,30,10", .meta = "LIST", .expect = "positive whole numbers separated by commas",
     .example = "784,30,10", .resume = RESUME_STRICT, .section = NET,
     .help = "layer sizes, inputs first; any depth"},
    {"layers", FLAG_LAYERS, AT(cfg.layers), .count = AT(cfg.n_layers), .def = "",
     .shown = "--sizes", .meta = "SPEC", .example = "conv:20x5x5,pool:2x2,dense:100,dense:10",
     .resume = RESUME_STRICT, .section = NET,
     .help =
         "the net as layers, instead of --sizes: conv:FxKxK (F filters of KxK, valid, stride 1), "
         "pool:PxP (max-pooling, right after a conv), dense:N; the input is the data's 1x28x28 and "
         "the "
         "last layer dense:10 (chapter 6)"},
    {"cost", FLAG_CHOICE, AT(cfg.cost), .choices = "quadratic|cross-entropy|log-likelihood",
     .def = "quadratic", .meta = "NAME", .resume = RESUME_STRICT, .section = NET,
     .help = "quadratic (C = 1/2 |a-y|^2, as the book), cross-entropy, or "
             "log-likelihood (a softmax on the output layer)"},
    {"init", FLAG_CHOICE, AT(cfg.init), .choices = "standard|nielsen|network3", .def = "standard",
     .meta = "NAME", .resume = RESUME_STRICT, .section = NET,
     .help =
         "standard: N(0,1) weights and biases (chapter 1)\n"
         "nielsen: N(0,1/n_in) weights, N(0,1) biases (chapter 3)\n"
         "network3: the book's network3.py: N(0,1/n_out) weights (conv: n_out = F·K²/P²), N(0,1) "
         "biases, a softmax output layer at zero (chapter 6)"},
    {"act", FLAG_ACTS, AT(act_list), .choices = "sigmoid|tanh|relu|softmax", .count = AT(n_act),
     .shown = "sigmoid", .meta = "LIST",
     .expect = "sigmoid, tanh or relu (comma-separated, one per hidden layer)", .example = "relu",
     .resume = RESUME_STRICT, .section = NET,
     .help = "hidden activations: sigmoid, tanh or relu; one for all hidden "
             "layers or one per hidden layer (the output follows the cost)"},
    {"eta", FLAG_DOUBLE, AT(cfg.eta), 0, BIG, .open_lo = 1, .def = "3.0", .meta = "F",
     .expect = "a learning rate > 0", .example = "3.0", .resume = RESUME_STRICT, .section = NET,
     .help = "learning rate; the update is w <- w - (eta/B) sum of the gradients over the global "
             "batch"},
    {"batch", FLAG_INT, AT(cfg.batch), 1, 1 << 30, .def = "10", .meta = "N", .example = "10",
     .resume = RESUME_STRICT, .section = NET,
     .help = "global mini-batch size, whatever the number of ranks (each rank takes a shard)"},
    {"epochs", FLAG_INT, AT(cfg.epochs), 1, 1 << 30, .def = "30", .meta = "N", .example = "30",
     .resume = RESUME_FREE, .section = NET, .help = "epochs to train (on --resume: the new total)"},
    {"seed", FLAG_SEED, AT(cfg.seed), .def = "1", .meta = "N", .example = "1",
     .resume = RESUME_STRICT, .section = NET,
     .help = "seed of every random draw (initialisation, shuffling, dropout, splits)"},
    {"no-shuffle", FLAG_SWITCH, AT(cfg.shuffle), .value = 0, .def = "1", .shown = "shuffle",
     .resume = RESUME_STRICT, .section = NET,
     .help = "visit the training samples in file order every epoch"},
    /* ---- chapter 3 ---- */
    {"l2", FLAG_DOUBLE, AT(cfg.l2), 0, BIG, .def = "0", .meta = "LAMBDA", .expect = "a lambda >= 0",
     .example = "5.0", .resume = RESUME_STRICT, .section = CH3,
     .help = "L2 in the book's form: w <- (1 - eta*LAMBDA/n) w - eta*grad (n = training-set size; "
             "biases are not regularised)"},
    {"l1", FLAG_DOUBLE, AT(cfg.l1), 0, BIG, .def = "0", .meta = "LAMBDA", .expect = "a lambda >= 0",
     .example = "5.0", .resume = RESUME_STRICT, .section = CH3,
     .help = "L1: w <- w - (eta*LAMBDA/n) sgn(w) - eta*grad"},
    {"dropout", FLAG_DOUBLE, AT(cfg.dropout), 0, 1, .def = "0", .meta = "P",
     .expect = "a probability in [0, 1)", .example = "0.5", .resume = RESUME_STRICT, .section = CH3,
     .help = "inverted dropout of hidden units with probability P; a unit's "
             "mask depends on (seed, epoch, sample, layer), never on the rank"},
    {"dropout-conv", FLAG_DOUBLE, AT(cfg.dropout_conv), 0, 1, .def = "0", .meta = "P",
     .expect = "a probability in [0, 1)", .example = "0.5", .resume = RESUME_STRICT, .section = CH3,
     .help = "inverted dropout of the last conv layer's outputs, the first dense layer's inputs "
             "(network3.py's p_dropout on its first FullyConnectedLayer; conv nets only)"},
    {"momentum", FLAG_DOUBLE, AT(cfg.momentum), 0, 1, .def = "0", .meta = "MU",
     .expect = "a value in [0, 1)", .example = "0.9", .resume = RESUME_STRICT, .section = CH3,
     .help = "momentum SGD: v <- MU v - eta grad, w <- w + v (the velocity is checkpointed)"},
    {"patience", FLAG_INT, AT(cfg.patience), 0, 1 << 30, .def = "0", .meta = "N", .example = "10",
     .resume = RESUME_STRICT, .section = CH3,
     .help = "the book's schedule: after N epochs without a better validation "
             "accuracy, eta <- eta / --lr-decay (0: constant eta)"},
    {"lr-decay", FLAG_DOUBLE, AT(cfg.lr_decay), 1, BIG, .open_lo = 1, .def = "2", .meta = "F",
     .expect = "a factor > 1", .example = "2", .resume = RESUME_STRICT, .section = CH3,
     .help = "the divisor"},
    {"lr-min-ratio", FLAG_DOUBLE, AT(cfg.lr_min_ratio), 1, BIG, .def = "128", .meta = "R",
     .expect = "a ratio >= 1", .example = "128", .resume = RESUME_STRICT, .section = CH3,
     .help = "stop when eta < eta0 / R"},
    {"early-stop", FLAG_INT, AT(cfg.early_stop), 0, 1 << 30, .def = "0", .meta = "N",
     .example = "10", .resume = RESUME_STRICT, .section = CH3,
     .help = "stop after N epochs without a better validation accuracy (0: off)"},
    {"monitor", FLAG_SET, AT(monitor), .choices = "train|test|speed", .def = "", .shown = "none",
     .meta = "LIST", .expect = "train, test, speed or a list of them (train,test,speed)",
     .example = "train,test", .resume = RESUME_FREE, .section = CH3,
     .help = "extra passes each epoch: train (cost with the regularisation term, and "
             "accuracy), test, speed (chapter 5: each layer's speed of learning, "
             "||mean dC/db|| over the first --speed-samples training samples, also at "
             "the start)"},
    {"speed-samples", FLAG_INT, AT(speed_samples), 1, 1 << 30, .def = "1000", .meta = "N",
     .expect = "a count >= 1, at most the training samples", .example = "1000",
     .resume = RESUME_STRICT, .section = CH3,
     .help = "--monitor speed: the first N training samples (file order)"},
    {"augment", FLAG_CHOICE, AT(cfg.augment), .choices = "none|shift", .def = "none",
     .meta = "KIND", .resume = RESUME_STRICT, .section = CH3,
     .help = "shift: move each training image by up to one pixel in a random "
             "direction, drawn anew each epoch from (seed, epoch, sample)"},
    /* ---- data ---- */
    {"dataset", FLAG_CHOICE, AT(dataset), .choices = "mnist|fashion-mnist", .def = "mnist",
     .meta = "NAME", .resume = RESUME_STRICT, .section = DATA,
     .help = "mnist or fashion-mnist (Debian's dataset-fashion-mnist)"},
    {"data", FLAG_PATH, AT(data_dir), .absolute = 1,
     .shown = "$NNDL_DATA/DATASET, NNDL_DATA = ./data", .meta = "DIR", .expect = "a directory path",
     .example = "data/mnist", .resume = RESUME_FREE, .section = DATA,
     .help = "directory with the four IDX files (raw or .gz)"},
    {"train-samples", FLAG_INT, AT(train_samples), 1, 1 << 30, .def = "0", .shown = "all 50000",
     .meta = "N", .example = "2000", .resume = RESUME_STRICT, .section = DATA,
     .help = "use only the first N training samples"},
    {"val-samples", FLAG_INT, AT(val_samples), 1, 1 << 30, .def = "10000", .meta = "N",
     .example = "10000", .resume = RESUME_STRICT, .section = DATA,
     .help = "validation samples, taken from the training file"},
    {"val-split", FLAG_CHOICE, AT(val_random), .choices = "last|random", .def = "last",
     .meta = "KIND", .resume = RESUME_STRICT, .section = DATA,
     .help = "last: the training file's last samples validate (the book's split)\n"
             "random: a random choice drawn from --seed"},
    /* ---- the run file ---- */
    {"out", FLAG_PATH, AT(out), .shown = "runs/run-DATE-TIME.h5", .meta = "FILE",
     .expect = "a file path", .example = "runs/ch1.h5", .resume = RESUME_LAUNCH, .section = RUN,
     .help = "the run file; its companion files go to FILE.d/ (an existing run is never replaced "
             "without --force)"},
    {"force", FLAG_SWITCH, AT(force), .value = 1, .def = "0", .shown = "off",
     .resume = RESUME_LAUNCH, .section = RUN, .help = "replace an existing run at --out"},
    {"resume", FLAG_PATH, AT(resume), .meta = "FILE", .expect = "a file path",
     .example = "runs/ch1.h5", .resume = RESUME_LAUNCH, .section = RUN,
     .help = "continue FILE from its last checkpoint; its stored flags apply, --epochs is the new "
             "total"},
    {"checkpoint-every", FLAG_INT, AT(checkpoint_every), 0, 1 << 30, .def = "1", .meta = "N",
     .example = "1", .resume = RESUME_FREE, .section = RUN,
     .help = "epochs between checkpoints (0: only at the end)"},
    {"checkpoint-every-steps", FLAG_LONG, AT(checkpoint_every_steps), 0, 1099511627776.0,
     .def = "0", .shown = "off", .meta = "N", .example = "1000", .resume = RESUME_FREE,
     .section = RUN, .help = "also every N steps within an epoch (0: off)"},
    {"keep", FLAG_INT, AT(keep), 1, 1 << 30, .def = "2", .meta = "K", .example = "2",
     .resume = RESUME_FREE, .section = RUN, .help = "checkpoints kept"},
    {"history-every", FLAG_INT, AT(history_every), 0, 1 << 30, .def = "1", .meta = "N",
     .example = "1", .resume = RESUME_FREE, .section = RUN,
     .help = "epochs between weight snapshots (0: none)"},
    {"probe", FLAG_INT, AT(probe), 0, 1 << 30, .def = "1000", .meta = "N", .example = "1000",
     .resume = RESUME_STRICT, .section = RUN,
     .help = "validation images whose hidden activations are recorded at each snapshot (0: none)"},
    {"probe-layers", FLAG_INTS, AT(probe_layers), 1, NNDL_MAX_SIZES, .count = AT(n_probe_layers),
     .min_n = 1, .def = "", .shown = "every hidden layer", .meta = "LIST",
     .expect = "layer numbers separated by commas", .example = "1,2", .resume = RESUME_STRICT,
     .section = RUN, .help = "which layers' outputs are probed (1 = the first weight layer)"},
    {"probe-conv", FLAG_INT, AT(probe_conv), 0, 1 << 30, .def = "10", .meta = "N", .example = "10",
     .resume = RESUME_STRICT, .section = RUN,
     .help = "of the probe images, how many have their conv layers' feature maps recorded (a conv "
             "layer's "
             "output is F x H x W per image: 2,880 floats for the book's first layer)"},
    {"compress", FLAG_INT, AT(compress), 0, 9, .def = "0", .meta = "N", .example = "4",
     .resume = RESUME_FREE, .section = RUN,
     .help = "gzip level 1-9 of the weight history (0: none)"},
    {"init-from", FLAG_PATH, AT(init_from), .def = "", .meta = "FILE", .expect = "a file path",
     .example = "runs/ch1.h5", .resume = RESUME_STRICT, .section = RUN,
     .help = "start from /model/layer_K of another run or any HDF5 file with that layout"},
    {"stop-after-steps", FLAG_LONG, AT(stop_after_steps), 1, 1099511627776.0, .shown = "off",
     .meta = "N", .example = "1000", .resume = RESUME_LAUNCH, .section = RUN,
     .help = "checkpoint and exit with status 75 after N steps of this launch, as "
             "on SIGUSR1 or SIGTERM (time-sliced jobs, tests)"},
    /* ---- output and resources ---- */
    {"log", FLAG_PATH, AT(log), .meta = "FILE", .expect = "a file name or '-'",
     .example = "runs/ch1.jsonl", .resume = RESUME_LAUNCH, .section = OUT,
     .help = "JSON Lines: one object per epoch, then one final object (appended); "
             "'-' writes them to stdout instead of the human lines"},
    {"progress", FLAG_SWITCH, AT(progress), .value = NNDL_PROGRESS_ON, .def = "-1",
     .shown = "on a terminal", .resume = RESUME_LAUNCH, .section = OUT,
     .help = "draw the progress bar within the epoch"},
    {"no-progress", FLAG_SWITCH, AT(progress), .value = NNDL_PROGRESS_OFF, .shown = "on a terminal",
     .resume = RESUME_LAUNCH, .section = OUT, .help = "never draw it"},
    {"threads", FLAG_INT, AT(threads), 1, 1 << 30, .def = "1", .meta = "N", .example = "1",
     .resume = RESUME_LAUNCH, .section = OUT, .help = "BLAS threads per rank"},
    {"on-nan", FLAG_CHOICE, AT(cfg.on_nan), .choices = "stop|skip-batch", .def = "stop",
     .meta = "WHAT", .resume = RESUME_FREE, .section = OUT,
     .help = "a NaN or Inf cost or gradient: stop (exit 1, nothing of that step "
             "applied, the last checkpoint kept) or skip-batch (drop that update, "
             "count it as skipped_batches in the log, go on)"},
    {"verbose", FLAG_SWITCH, AT(verbose), .value = 1, .def = "0", .shown = "off",
     .resume = RESUME_LAUNCH, .section = OUT, .help = "print every rank's core binding (hwloc)"},
    {"help", FLAG_SWITCH, AT(help), .value = 1, .def = "0", .resume = RESUME_LAUNCH, .section = OUT,
     .help = "this text"},
    {"help-markdown", FLAG_SWITCH, AT(help_markdown), .value = 1, .def = "0",
     .resume = RESUME_LAUNCH, .section = OUT,
     .help = "every flag as Markdown tables (docs/flags.md is its output)"},
    {"version", FLAG_SWITCH, AT(version), .value = 1, .def = "0", .resume = RESUME_LAUNCH,
     .section = OUT, .help = "the version"},
    /* ---- how the ranks work ---- */
    {"reproducible", FLAG_SWITCH, AT(cfg.reproducible), .value = 1, .def = "0", .shown = "off",
     .resume = RESUME_STRICT, .section = PAR,
     .help = "the same final weights, bit for bit, for any number of ranks: "
             "fixed chunks of the batch, exact fixed-point sums of their "
             "gradients, 1 BLAS thread (slower)"},
    {"chunk", FLAG_INT, AT(cfg.chunk), 0, 1 << 30, .def = "0", .shown = "ceil(batch/8)",
     .meta = "N", .example = "5", .resume = RESUME_STRICT, .section = PAR,
     .help = "--reproducible: samples per fixed chunk of the batch (part of the result: keep it "
             "to compare runs)"},
    {"reduce", FLAG_CHOICE, AT(cfg.reduce), .choices = "auto|mpi|shared", .def = "auto",
     .meta = "HOW", .resume = RESUME_FREE, .section = PAR,
     .help = "shared: the fused step; the ranks of one node share the parameters "
             "and the batch, each updates its share of every layer inside the "
             "weight-gradient GEMM (no gradient formed);\n"
             "mpi: each rank's gradient, MPI_Allreduce, then the update;\nauto: shared wherever it "
             "can"},
    {"split", FLAG_CHOICE, AT(cfg.split), .choices = "auto|rows|units", .def = "auto",
     .meta = "HOW", .resume = RESUME_FREE, .section = PAR,
     .help = "the shared step's work: rows (each rank its rows of the batch) or "
             "units (every GEMM split by units, a barrier per layer; a conv net's "
             "conv layers stay by rows); auto: units for nets of >= 2^20 parameters"},
    {"overlap", FLAG_CHOICE, AT(cfg.overlap), .choices = "auto|on|off", .def = "auto",
     .meta = "WHEN", .resume = RESUME_FREE, .section = PAR,
     .help = "the MPI reduction in buckets overlapping backprop (MPI_Iallreduce): "
             "auto = on for nets of >= 2^20 parameters on ranks of several nodes"},
};

const int nndl_n_flags = (int)(sizeof nndl_flags / sizeof *nndl_flags);
