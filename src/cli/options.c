/* options.c: getopt_long parsing and checking of nndl-train's flags (see options.h). */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void default_data_dir(nndl_options *o);

static const struct option long_opts[] = {
    {"sizes", required_argument, 0, OPT_SIZES},
    {"eta", required_argument, 0, OPT_ETA},
    {"batch", required_argument, 0, OPT_BATCH},
    {"epochs", required_argument, 0, OPT_EPOCHS},
    {"cost", required_argument, 0, OPT_COST},
    {"init", required_argument, 0, OPT_INIT},
    {"seed", required_argument, 0, OPT_SEED},
    {"data", required_argument, 0, OPT_DATA},
    {"dataset", required_argument, 0, OPT_DATASET},
    {"log", required_argument, 0, OPT_LOG},
    {"train-samples", required_argument, 0, OPT_TRAIN_SAMPLES},
    {"val-samples", required_argument, 0, OPT_VAL_SAMPLES},
    {"val-split", required_argument, 0, OPT_VAL_SPLIT},
    {"no-shuffle", no_argument, 0, OPT_NO_SHUFFLE},
    {"threads", required_argument, 0, OPT_THREADS},
    {"progress", no_argument, 0, OPT_PROGRESS},
    {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
    {"out", required_argument, 0, OPT_OUT},
    {"force", no_argument, 0, OPT_FORCE},
    {"resume", required_argument, 0, OPT_RESUME},
    {"checkpoint-every", required_argument, 0, OPT_CKPT_EVERY},
    {"checkpoint-every-steps", required_argument, 0, OPT_CKPT_EVERY_STEPS},
    {"keep", required_argument, 0, OPT_KEEP},
    {"history-every", required_argument, 0, OPT_HISTORY_EVERY},
    {"probe", required_argument, 0, OPT_PROBE},
    {"probe-layers", required_argument, 0, OPT_PROBE_LAYERS},
    {"compress", required_argument, 0, OPT_COMPRESS},
    {"init-from", required_argument, 0, OPT_INIT_FROM},
    {"stop-after-steps", required_argument, 0, OPT_STOP_AFTER_STEPS},
    {"act", required_argument, 0, OPT_ACT},
    {"l1", required_argument, 0, OPT_L1},
    {"l2", required_argument, 0, OPT_L2},
    {"dropout", required_argument, 0, OPT_DROPOUT},
    {"momentum", required_argument, 0, OPT_MOMENTUM},
    {"patience", required_argument, 0, OPT_PATIENCE},
    {"lr-decay", required_argument, 0, OPT_LR_DECAY},
    {"lr-min-ratio", required_argument, 0, OPT_LR_MIN_RATIO},
    {"early-stop", required_argument, 0, OPT_EARLY_STOP},
    {"monitor", required_argument, 0, OPT_MONITOR},
    {"augment", required_argument, 0, OPT_AUGMENT},
    {"verbose", no_argument, 0, OPT_VERBOSE},
    {"on-nan", required_argument, 0, OPT_ON_NAN},
    {"reproducible", no_argument, 0, OPT_REPRODUCIBLE},
    {"chunk", required_argument, 0, OPT_CHUNK},
    {"overlap", required_argument, 0, OPT_OVERLAP},
    {"reduce", required_argument, 0, OPT_REDUCE},
    {"split", required_argument, 0, OPT_SPLIT},
    {"help", no_argument, 0, OPT_HELP},
    {"version", no_argument, 0, OPT_VERSION},
    {0, 0, 0, 0}};

void nndl_options_usage(FILE *out)
{
    fputs(
        "usage: mpirun -np P nndl-train [FLAGS]\n"
        "Train a fully connected network on MNIST with mini-batch SGD, data-parallel over the MPI ranks.\n"
        "With no flags: the book's chapter-1 network (784-30-10, quadratic cost, eta 3.0, batch 10).\n"
        "\n"
        "Network and training\n"
        "  --sizes LIST           layer sizes, inputs first                    [784,30,10]\n"
        "  --cost NAME            quadratic | cross-entropy | log-likelihood   [quadratic]\n"
        "                         (log-likelihood puts a softmax on the output layer)\n"
        "  --init NAME            standard: N(0,1) weights and biases (ch. 1)\n"
        "                         nielsen: N(0,1/n_in) weights, N(0,1) biases (ch. 3)  [standard]\n"
        "  --act LIST             hidden activations: sigmoid | tanh | relu, one for all\n"
        "                         hidden layers or one per hidden layer        [sigmoid]\n"
        "                         (the output follows the cost: softmax for log-likelihood)\n"
        "  --eta F                learning rate, > 0                           [3.0]\n"
        "  --batch N              global mini-batch size (split across ranks)  [10]\n"
        "  --epochs N             epochs to train                              [30]\n"
        "  --seed N               seed of every random draw (init, shuffling)  [1]\n"
        "  --no-shuffle           visit the training samples in file order every epoch\n"
        "\n"
        "Improving learning (chapter 3)\n"
        "  --l2 LAMBDA            L2: w <- (1 - eta*LAMBDA/n) w - eta*grad (n = training set) [0]\n"
        "  --l1 LAMBDA            L1: w <- w - (eta*LAMBDA/n) sgn(w) - eta*grad  [0]\n"
        "  --dropout P            drop hidden units with probability P in [0,1) [0]\n"
        "  --momentum MU          momentum SGD, MU in [0,1)                    [0]\n"
        "  --patience N           divide eta by --lr-decay after N epochs without a better\n"
        "                         validation accuracy (0: constant eta)        [0]\n"
        "  --lr-decay F           the divisor, > 1                             [2]\n"
        "  --lr-min-ratio R       stop when eta < eta0 / R                     [128]\n"
        "  --early-stop N         stop after N epochs without a better validation accuracy [0]\n"
        "  --monitor LIST         extra full passes each epoch: train (cost incl. the\n"
        "                         regularisation term, and accuracy), test     [none]\n"
        "  --augment KIND         shift: move each training image by up to one pixel,\n"
        "                         a new random move each epoch                 [none]\n"
        "\n"
        "Data\n"
        "  --dataset NAME         mnist | fashion-mnist                        [mnist]\n"
        "  --data DIR             directory with the four IDX files (raw or .gz)\n"
        "                         [$NNDL_DATA/DATASET, NNDL_DATA defaults to ./data]\n"
        "  --train-samples N      use only the first N training samples        [50000]\n"
        "  --val-samples N        validation samples, taken from the training file [10000]\n"
        "  --val-split KIND       last: the file's last samples validate (the book)\n"
        "                         random: a random choice drawn from --seed   [last]\n"
        "\n"
        "Run file (HDF5; layout in docs/runfile.md)\n"
        "  --out FILE             the run file; its companion files go to FILE.d/\n"
        "                         [runs/run-DATE-TIME.h5; an existing run is never replaced]\n"
        "  --force                replace an existing run at --out\n"
        "  --resume FILE          continue FILE from its last checkpoint (its stored flags\n"
        "                         apply; --epochs is the new total)\n"
        "  --checkpoint-every N   epochs between checkpoints (0: only at the end)  [1]\n"
        "  --checkpoint-every-steps N  also every N steps within an epoch (0: off) [0]\n"
        "  --keep K               checkpoints kept                             [2]\n"
        "  --history-every N      epochs between weight snapshots (0: none)    [1]\n"
        "  --probe N              validation images whose hidden activations are\n"
        "                         recorded at each snapshot (0: none)          [1000]\n"
        "  --probe-layers LIST    which layers' outputs, 1 = first weight layer [every hidden]\n"
        "  --compress N           gzip level 1-9 for the weight history (0: none) [0]\n"
        "  --init-from FILE       start from /model/layer_K of another run or HDF5 file\n"
        "  --stop-after-steps N   checkpoint and exit with status 75 after N steps of this\n"
        "                         launch, as on SIGUSR1/SIGTERM (time-sliced jobs, tests)\n"
        "\n"
        "Output and resources\n"
        "  --log FILE             JSON Lines: one object per epoch, then one with test_accuracy;\n"
        "                         '-' writes them to stdout instead of the human lines\n"
        "  --progress, --no-progress   progress bar within the epoch           [on a terminal]\n"
        "  --threads N            BLAS threads per rank                        [1]\n"
        "  --overlap WHEN         reduce the gradient in buckets overlapping backprop (MPI_Iallreduce):\n"
        "                         auto (nets of >= 1M parameters on ranks of several nodes), on, off [auto]\n"
        "  --reduce HOW           shared (the fused step: ranks of one node share the parameters and the\n"
        "                         batch's activations; each updates its share of every layer inside the\n"
        "                         weight-gradient GEMM, no gradient formed) or mpi (each rank's gradient,\n"
        "                         MPI_Allreduce, then the update); auto: shared where it can   [auto]\n"
        "  --split HOW            the shared step's work: rows (each rank its rows of the batch) or\n"
        "                         units (every GEMM split by units over the whole batch, a barrier per\n"
        "                         layer); auto: units for nets of >= 1M parameters   [auto]\n"
        "  --verbose              print each rank's core binding (hwloc)\n"
        "  --on-nan WHAT          a NaN or Inf cost: stop (exit 1, the last checkpoint kept) or\n"
        "                         skip-batch (drop that step's update and go on) [stop]\n"
        "  --reproducible         the same final weights, bit for bit, for any number of ranks:\n"
        "                         fixed chunks of the batch, exact fixed-point gradient sums,\n"
        "                         1 BLAS thread (slower; see README)\n"
        "  --chunk N              samples per chunk in --reproducible mode    [ceil(batch/8)]\n"
        "  --help, --version\n"
        "\n"
        "Example (the book's chapter-3 network on 2 ranks, JSON log):\n"
        "  mpirun -np 2 nndl-train --sizes 784,100,10 --cost cross-entropy --init nielsen \\\n"
        "      --eta 0.5 --epochs 30 --log runs/ch3.jsonl\n"
        "Signals: SIGUSR1, SIGTERM or SIGINT make every rank stop at the next step, write a\n"
        "checkpoint and exit with status 75 (resume with --resume); a second signal aborts.\n"
        "Exit status: 0 done, 2 bad flags or input files, 75 stopped (resumable), 1 other failures.\n",
        out);
}

/* ---- value parsers: each names the flag, what it expects and what it found ---- */

static nndl_status parse_long(const char *flag, const char *s, long lo, long hi, long *out, const char *example,
                              nndl_err *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return nndl_fail(err, NNDL_EARG, "%s: expected a whole number from %ld to %ld, found '%s' (e.g. %s %s)",
                         flag, lo, hi, s, flag, example);
    *out = v;
    return NNDL_OK;
}

/* a finite number in [lo, hi) (or (lo, hi) when open_lo) */
static nndl_status parse_double(const char *flag, const char *s, int open_lo, double lo, double hi, double *out,
                                const char *what, const char *example, nndl_err *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || (open_lo && v == lo) || v >= hi)
        return nndl_fail(err, NNDL_EARG, "%s: expected %s, found '%s' (e.g. %s %s)", flag, what, s, flag, example);
    *out = v;
    return NNDL_OK;
}

static nndl_status parse_int(const char *flag, const char *s, int lo, int *out, const char *example, nndl_err *err)
{
    long v = 0;
    nndl_status st = parse_long(flag, s, lo, 1L << 30, &v, example, err);
    if (st == NNDL_OK) *out = (int)v;
    return st;
}

static nndl_status parse_sizes(nndl_config *c, const char *s, nndl_err *err)
{
    const char *p = s;
    c->n_sizes = 0;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > (1 << 24) || (*end && *end != ','))
            return nndl_fail(err, NNDL_EARG, "--sizes: expected positive whole numbers separated by commas, "
                             "found '%s' (e.g. --sizes 784,30,10)", s);
        if (c->n_sizes == NNDL_MAX_SIZES)
            return nndl_fail(err, NNDL_EARG, "--sizes: at most %d sizes, found more in '%s'", NNDL_MAX_SIZES, s);
        c->sizes[c->n_sizes++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end && !*p) return nndl_fail(err, NNDL_EARG, "--sizes: '%s' ends with a comma (e.g. --sizes 784,30,10)", s);
    }
    if (c->n_sizes < 2)
        return nndl_fail(err, NNDL_EARG, "--sizes: expected at least two sizes (inputs and outputs), found '%s' "
                         "(e.g. --sizes 784,30,10)", s);
    return NNDL_OK;
}

void nndl_options_sizes_str(const nndl_config *c, char *buf, size_t cap, char sep)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < c->n_sizes && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%.*s%d", i > 0, &sep, c->sizes[i]);
}

static void defaults(nndl_options *o)
{
    memset(o, 0, sizeof *o);
    nndl_config *c = &o->cfg;
    int sizes[] = {784, 30, 10};
    memcpy(c->sizes, sizes, sizeof sizes);
    c->n_sizes = 3;
    for (int i = 0; i < NNDL_MAX_SIZES; i++) c->act[i] = NNDL_ACT_SIGMOID;
    c->cost = NNDL_COST_QUADRATIC;
    c->init = NNDL_INIT_STANDARD;
    c->eta = 3.0;
    c->batch = 10;
    c->epochs = 30;
    c->seed = 1;
    c->shuffle = 1;
    c->overlap = -1;
    c->reduce = -1;
    c->lr_decay = 2.0;
    c->lr_min_ratio = 128.0;
    o->dataset = "mnist";
    o->val_samples = 10000;
    o->threads = 1;
    o->progress = -1;
    o->checkpoint_every = 1;
    o->keep = 2;
    o->history_every = 1;
    o->probe = 1000;
}

static nndl_status parse_path(const char *flag, const char *arg, char *dst, size_t cap, nndl_err *err)
{
    if (!*arg || strlen(arg) >= cap - 64)
        return nndl_fail(err, NNDL_EARG, "%s: expected a file path, found '%s'", flag, arg);
    strcpy(dst, arg);
    return NNDL_OK;
}

static nndl_status parse_int_list(const char *flag, const char *s, int *out, int *n, nndl_err *err)
{
    const char *p = s;
    *n = 0;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > NNDL_MAX_SIZES || (*end && *end != ',') || *n == NNDL_MAX_SIZES)
            return nndl_fail(err, NNDL_EARG, "%s: expected layer numbers separated by commas, found '%s' (e.g. %s 1,2)",
                             flag, s, flag);
        out[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) return nndl_fail(err, NNDL_EARG, "%s: expected layer numbers, found '%s' (e.g. %s 1)", flag, s, flag);
    return NNDL_OK;
}

/* --act: one entry for every hidden layer, one per hidden layer, or one per layer where the last
 * must be the output the cost implies (softmax for log-likelihood, sigmoid otherwise). */
static nndl_status resolve_act(nndl_options *o, nndl_err *err)
{
    nndl_config *c = &o->cfg;
    int hidden = c->n_sizes - 2, n = o->n_act;
    nndl_act out = c->cost == NNDL_COST_LOG_LIKELIHOOD ? NNDL_ACT_SOFTMAX : NNDL_ACT_SIGMOID;
    if (n == 0) return NNDL_OK;
    if (n == hidden + 1 && o->act_list[n - 1] != out)
        return nndl_fail(err, NNDL_EARG, "--act: the output layer is %s with --cost %s, found %s; drop the last entry "
                         "or change --cost", nndl_act_name(out), nndl_cost_name(c->cost),
                         nndl_act_name(o->act_list[n - 1]));
    if (n != 1 && n != hidden && n != hidden + 1)
        return nndl_fail(err, NNDL_EARG, "--act: %d entries for %d hidden layers (--sizes); give one for all or one "
                         "per hidden layer", n, hidden);
    for (int l = 0; l < hidden; l++) {
        c->act[l] = o->act_list[n == 1 ? 0 : l];
        if (c->act[l] == NNDL_ACT_SOFTMAX)
            return nndl_fail(err, NNDL_EARG, "--act: softmax only as the output layer (with --cost log-likelihood)");
    }
    return NNDL_OK;
}

static nndl_status parse_one(nndl_options *o, int opt, const char *arg, nndl_err *err)
{
    nndl_config *c = &o->cfg;
    long v = 0;
    char *end;
    switch (opt) {
    case OPT_SIZES: return parse_sizes(c, arg, err);
    case OPT_ETA:
        errno = 0;
        c->eta = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(c->eta) || c->eta <= 0)
            return nndl_fail(err, NNDL_EARG, "--eta: expected a learning rate > 0, found '%s' (e.g. --eta 3.0)", arg);
        return NNDL_OK;
    case OPT_BATCH: return parse_int("--batch", arg, 1, &c->batch, "10", err);
    case OPT_EPOCHS: return parse_int("--epochs", arg, 1, &c->epochs, "30", err);
    case OPT_SEED:
        if (!*arg || strspn(arg, "0123456789") != strlen(arg) || strlen(arg) > 16 ||
            strtoull(arg, NULL, 10) >= (1ull << 53)) /* exact in the JSON configuration (a double) */
            return nndl_fail(err, NNDL_EARG, "--seed: expected a whole number from 0 to 2^53-1, found '%s' "
                             "(e.g. --seed 1)", arg);
        c->seed = strtoull(arg, NULL, 10);
        return NNDL_OK;
    case OPT_COST:
        if ((v = nndl_cost_parse(arg)) < 0)
            return nndl_fail(err, NNDL_EARG, "--cost: expected quadratic, cross-entropy or log-likelihood, found '%s'",
                             arg);
        c->cost = (nndl_cost)v;
        return NNDL_OK;
    case OPT_INIT:
        if ((v = nndl_init_parse(arg)) < 0)
            return nndl_fail(err, NNDL_EARG, "--init: expected standard or nielsen, found '%s'", arg);
        c->init = (nndl_init)v;
        return NNDL_OK;
    case OPT_DATA:
        if (!*arg || strlen(arg) >= sizeof o->data_dir - 64)
            return nndl_fail(err, NNDL_EARG, "--data: expected a directory path, found '%s'", arg);
        strcpy(o->data_dir, arg);
        return NNDL_OK;
    case OPT_DATASET:
        if (strcmp(arg, "mnist") && strcmp(arg, "fashion-mnist"))
            return nndl_fail(err, NNDL_EARG, "--dataset: expected mnist or fashion-mnist, found '%s'", arg);
        o->dataset = strcmp(arg, "mnist") ? "fashion-mnist" : "mnist";
        return NNDL_OK;
    case OPT_LOG:
        if (!*arg) return nndl_fail(err, NNDL_EARG, "--log: expected a file name or '-', found ''");
        o->log_path = arg;
        return NNDL_OK;
    case OPT_TRAIN_SAMPLES: return parse_int("--train-samples", arg, 1, &o->train_samples, "2000", err);
    case OPT_VAL_SAMPLES: return parse_int("--val-samples", arg, 1, &o->val_samples, "10000", err);
    case OPT_VAL_SPLIT:
        if (strcmp(arg, "last") && strcmp(arg, "random"))
            return nndl_fail(err, NNDL_EARG, "--val-split: expected last or random, found '%s'", arg);
        o->val_random = strcmp(arg, "random") == 0;
        return NNDL_OK;
    case OPT_NO_SHUFFLE: c->shuffle = 0; return NNDL_OK;
    case OPT_THREADS: return parse_int("--threads", arg, 1, &o->threads, "1", err);
    case OPT_PROGRESS: o->progress = 1; return NNDL_OK;
    case OPT_NO_PROGRESS: o->progress = 0; return NNDL_OK;
    case OPT_OUT: return parse_path("--out", arg, o->out, sizeof o->out, err);
    case OPT_FORCE: o->force = 1; return NNDL_OK;
    case OPT_RESUME: return parse_path("--resume", arg, o->resume, sizeof o->resume, err);
    case OPT_INIT_FROM: return parse_path("--init-from", arg, o->init_from, sizeof o->init_from, err);
    case OPT_CKPT_EVERY: return parse_int("--checkpoint-every", arg, 0, &o->checkpoint_every, "1", err);
    case OPT_CKPT_EVERY_STEPS: return parse_long("--checkpoint-every-steps", arg, 0, 1L << 40,
                                                 &o->checkpoint_every_steps, "1000", err);
    case OPT_KEEP: return parse_int("--keep", arg, 1, &o->keep, "2", err);
    case OPT_HISTORY_EVERY: return parse_int("--history-every", arg, 0, &o->history_every, "1", err);
    case OPT_PROBE: return parse_int("--probe", arg, 0, &o->probe, "1000", err);
    case OPT_PROBE_LAYERS: return parse_int_list("--probe-layers", arg, o->probe_layers, &o->n_probe_layers, err);
    case OPT_COMPRESS:
        if ((v = 0, parse_long("--compress", arg, 0, 9, &v, "4", err)) != NNDL_OK) return NNDL_EARG;
        o->compress = (int)v;
        return NNDL_OK;
    case OPT_STOP_AFTER_STEPS:
        return parse_long("--stop-after-steps", arg, 1, 1L << 40, &o->stop_after_steps, "1000", err);
    case OPT_ACT: {
        char buf[1024], *save = NULL;
        snprintf(buf, sizeof buf, "%s", arg);
        o->n_act = 0;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            int a = nndl_act_parse(tok);
            if (a < 0 && strcmp(tok, "softmax") == 0) a = NNDL_ACT_SOFTMAX;
            if (a < 0 || o->n_act == NNDL_MAX_SIZES)
                return nndl_fail(err, NNDL_EARG, "--act: expected sigmoid, tanh or relu (comma-separated, one per "
                                 "hidden layer), found '%s' in '%s'", tok, arg);
            o->act_list[o->n_act++] = (nndl_act)a;
        }
        return o->n_act ? NNDL_OK : nndl_fail(err, NNDL_EARG, "--act: expected an activation, found '%s'", arg);
    }
    case OPT_L1: return parse_double("--l1", arg, 0, 0, 1e30, &o->cfg.l1, "a lambda >= 0", "5.0", err);
    case OPT_L2: return parse_double("--l2", arg, 0, 0, 1e30, &o->cfg.l2, "a lambda >= 0", "5.0", err);
    case OPT_DROPOUT: return parse_double("--dropout", arg, 0, 0, 1, &o->cfg.dropout, "a probability in [0, 1)", "0.5", err);
    case OPT_MOMENTUM: return parse_double("--momentum", arg, 0, 0, 1, &o->cfg.momentum, "a value in [0, 1)", "0.9", err);
    case OPT_LR_DECAY: return parse_double("--lr-decay", arg, 1, 1, 1e30, &o->cfg.lr_decay, "a factor > 1", "2", err);
    case OPT_LR_MIN_RATIO:
        return parse_double("--lr-min-ratio", arg, 0, 1, 1e30, &o->cfg.lr_min_ratio, "a ratio >= 1", "128", err);
    case OPT_PATIENCE: return parse_int("--patience", arg, 0, &o->cfg.patience, "10", err);
    case OPT_EARLY_STOP: return parse_int("--early-stop", arg, 0, &o->cfg.early_stop, "10", err);
    case OPT_MONITOR: {
        char buf[256], *save = NULL;
        snprintf(buf, sizeof buf, "%s", arg);
        o->cfg.monitor_train = o->cfg.monitor_test = 0;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (!strcmp(tok, "train")) o->cfg.monitor_train = 1;
            else if (!strcmp(tok, "test")) o->cfg.monitor_test = 1;
            else if (strcmp(tok, "none"))
                return nndl_fail(err, NNDL_EARG, "--monitor: expected train, test or both (train,test), found '%s'", arg);
        }
        return NNDL_OK;
    }
    case OPT_AUGMENT:
        if (strcmp(arg, "shift") && strcmp(arg, "none"))
            return nndl_fail(err, NNDL_EARG, "--augment: expected shift or none, found '%s'", arg);
        o->cfg.augment = !strcmp(arg, "shift");
        return NNDL_OK;
    case OPT_VERBOSE: o->verbose = 1; return NNDL_OK;
    case OPT_ON_NAN:
        if (strcmp(arg, "stop") && strcmp(arg, "skip-batch"))
            return nndl_fail(err, NNDL_EARG, "--on-nan: expected stop or skip-batch, found '%s'", arg);
        o->cfg.on_nan_skip = !strcmp(arg, "skip-batch");
        return NNDL_OK;
    case OPT_REPRODUCIBLE: o->cfg.reproducible = 1; return NNDL_OK;
    case OPT_CHUNK: return parse_int("--chunk", arg, 0, &o->cfg.chunk, "5", err);
    case OPT_OVERLAP:
        if (strcmp(arg, "auto") && strcmp(arg, "on") && strcmp(arg, "off"))
            return nndl_fail(err, NNDL_EARG, "--overlap: expected auto, on or off, found '%s'", arg);
        o->cfg.overlap = !strcmp(arg, "auto") ? -1 : !strcmp(arg, "on");
        return NNDL_OK;
    case OPT_REDUCE:
        if (strcmp(arg, "auto") && strcmp(arg, "mpi") && strcmp(arg, "shared"))
            return nndl_fail(err, NNDL_EARG, "--reduce: expected auto, mpi or shared, found '%s'", arg);
        o->cfg.reduce = !strcmp(arg, "auto") ? -1 : !strcmp(arg, "shared");
        return NNDL_OK;
    case OPT_SPLIT:
        if (strcmp(arg, "auto") && strcmp(arg, "rows") && strcmp(arg, "units"))
            return nndl_fail(err, NNDL_EARG, "--split: expected auto, rows or units, found '%s'", arg);
        o->cfg.split = !strcmp(arg, "auto") ? 0 : !strcmp(arg, "rows") ? 1 : 2;
        return NNDL_OK;
    case OPT_HELP: o->help = 1; return NNDL_OK;
    case OPT_VERSION: o->version = 1; return NNDL_OK;
    }
    return nndl_fail(err, NNDL_EARG, "internal: unhandled option %d", opt);
}

nndl_status nndl_options_parse(nndl_options *o, int argc, char **argv, nndl_err *err)
{
    defaults(o);
    optind = 0; /* GNU: full re-initialisation, so the parser can run more than once */
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
        if (opt == '?')
            return nndl_fail(err, NNDL_EARG, "unknown flag '%s'; see nndl-train --help for the flags",
                             argv[optind - 1]);
        if (opt == ':')
            return nndl_fail(err, NNDL_EARG, "%s needs a value; see nndl-train --help", argv[optind - 1]);
        nndl_status st = parse_one(o, opt, optarg, err);
        if (st != NNDL_OK) return st;
        o->given[opt - OPT_SIZES] = 1;
    }
    if (optind < argc)
        return nndl_fail(err, NNDL_EARG, "unexpected argument '%s': nndl-train takes only flags; "
                         "see nndl-train --help", argv[optind]);
    nndl_status st = resolve_act(o, err);
    if (st != NNDL_OK) return st;
    if (o->cfg.cost == NNDL_COST_LOG_LIKELIHOOD && o->cfg.sizes[o->cfg.n_sizes - 1] < 2)
        return nndl_fail(err, NNDL_EARG, "--cost log-likelihood needs a softmax over at least 2 outputs");
    if (o->resume[0] && o->out[0] && strcmp(o->resume, o->out) != 0)
        return nndl_fail(err, NNDL_EARG, "--resume %s --out %s: a resumed run keeps writing to its own file; "
                         "drop --out", o->resume, o->out);
    if (o->resume[0] && o->force)
        return nndl_fail(err, NNDL_EARG, "--resume with --force: --force would delete the run being resumed; drop one");
    if (o->resume[0] && o->given[OPT_INIT_FROM - OPT_SIZES])
        return nndl_fail(err, NNDL_EARG, "--resume with --init-from: a resumed run continues from its own checkpoint; "
                         "drop --init-from");
    if (!o->data_dir[0]) default_data_dir(o);
    return NNDL_OK;
}

/* ---- the configuration as JSON ---- */

static void default_data_dir(nndl_options *o)
{
    const char *root = getenv("NNDL_DATA");
    snprintf(o->data_dir, sizeof o->data_dir, "%s/%s", root && *root ? root : "data", o->dataset);
}

nndl_status nndl_options_check(const nndl_options *o, nndl_err *err)
{
    int L = o->cfg.n_sizes - 1;
    for (int i = 0; i < o->n_probe_layers; i++)
        if (o->probe_layers[i] > L)
            return nndl_fail(err, NNDL_EARG, "--probe-layers: layer %d does not exist: --sizes has %d weight layers "
                             "(1 to %d; %d is the output)", o->probe_layers[i], L, L, L);
    if (o->cfg.chunk > 0 && !o->cfg.reproducible)
        return nndl_fail(err, NNDL_EARG, "--chunk %d: chunks are the --reproducible mode's; add --reproducible or "
                         "drop --chunk", o->cfg.chunk);
    if (o->cfg.chunk > o->cfg.batch)
        return nndl_fail(err, NNDL_EARG, "--chunk %d is larger than --batch %d; use --chunk %d or less",
                         o->cfg.chunk, o->cfg.batch, o->cfg.batch);
    if (o->cfg.reproducible && o->threads > 1)
        return nndl_fail(err, NNDL_EARG, "--threads %d with --reproducible: the reproducible mode uses 1 BLAS thread "
                         "per rank (threaded GEMMs may sum in another order); drop --threads", o->threads);
    if (o->probe > o->val_samples)
        return nndl_fail(err, NNDL_EARG, "--probe %d: only %d validation images to probe (--val-samples); use "
                         "--probe %d or less", o->probe, o->val_samples, o->val_samples);
    return NNDL_OK;
}

static cJSON *int_array(const int *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

cJSON *nndl_options_to_json(const nndl_options *o)
{
    const nndl_config *c = &o->cfg;
    cJSON *j = cJSON_CreateObject(), *act = cJSON_CreateArray();
    cJSON_AddItemToObject(j, "sizes", int_array(c->sizes, c->n_sizes));
    for (int l = 0; l < c->n_sizes - 2; l++) cJSON_AddItemToArray(act, cJSON_CreateString(nndl_act_name(c->act[l])));
    cJSON_AddItemToObject(j, "act", act);
    cJSON_AddStringToObject(j, "cost", nndl_cost_name(c->cost));
    cJSON_AddStringToObject(j, "init", nndl_init_name(c->init));
    cJSON_AddNumberToObject(j, "eta", c->eta);
    cJSON_AddNumberToObject(j, "batch", c->batch);
    cJSON_AddNumberToObject(j, "epochs", c->epochs);
    cJSON_AddNumberToObject(j, "seed", (double)c->seed); /* < 2^53: exact */
    cJSON_AddBoolToObject(j, "no-shuffle", !c->shuffle);
    cJSON_AddStringToObject(j, "dataset", o->dataset);
    char abs[PATH_MAX];
    cJSON_AddStringToObject(j, "data", realpath(o->data_dir, abs) ? abs : o->data_dir);
    cJSON_AddNumberToObject(j, "train-samples", o->train_samples);
    cJSON_AddNumberToObject(j, "val-samples", o->val_samples);
    cJSON_AddStringToObject(j, "val-split", o->val_random ? "random" : "last");
    cJSON_AddStringToObject(j, "init-from", o->init_from);
    cJSON_AddNumberToObject(j, "checkpoint-every", o->checkpoint_every);
    cJSON_AddNumberToObject(j, "checkpoint-every-steps", (double)o->checkpoint_every_steps);
    cJSON_AddNumberToObject(j, "keep", o->keep);
    cJSON_AddNumberToObject(j, "history-every", o->history_every);
    cJSON_AddNumberToObject(j, "probe", o->probe);
    cJSON_AddItemToObject(j, "probe-layers", int_array(o->probe_layers, o->n_probe_layers));
    cJSON_AddNumberToObject(j, "compress", o->compress);
    cJSON_AddNumberToObject(j, "l1", c->l1);
    cJSON_AddNumberToObject(j, "l2", c->l2);
    cJSON_AddNumberToObject(j, "dropout", c->dropout);
    cJSON_AddNumberToObject(j, "momentum", c->momentum);
    cJSON_AddNumberToObject(j, "patience", c->patience);
    cJSON_AddNumberToObject(j, "lr-decay", c->lr_decay);
    cJSON_AddNumberToObject(j, "lr-min-ratio", c->lr_min_ratio);
    cJSON_AddNumberToObject(j, "early-stop", c->early_stop);
    cJSON *mon = cJSON_CreateArray();
    if (c->monitor_train) cJSON_AddItemToArray(mon, cJSON_CreateString("train"));
    if (c->monitor_test) cJSON_AddItemToArray(mon, cJSON_CreateString("test"));
    cJSON_AddItemToObject(j, "monitor", mon);
    cJSON_AddStringToObject(j, "augment", c->augment ? "shift" : "none");
    cJSON_AddStringToObject(j, "on-nan", c->on_nan_skip ? "skip-batch" : "stop");
    cJSON_AddBoolToObject(j, "reproducible", c->reproducible);
    cJSON_AddNumberToObject(j, "chunk", c->chunk);
    cJSON_AddStringToObject(j, "overlap", c->overlap < 0 ? "auto" : c->overlap ? "on" : "off");
    cJSON_AddStringToObject(j, "reduce", c->reduce < 0 ? "auto" : c->reduce ? "shared" : "mpi");
    cJSON_AddStringToObject(j, "split", c->split == 1 ? "rows" : c->split == 2 ? "units" : "auto");
    return j;
}

/* key, flag, and whether the model or data depend on it (then a resume may not change it) */
static const struct { const char *key; int opt, strict; } keys[] = {
    {"sizes", OPT_SIZES, 1}, {"act", OPT_ACT, 1}, {"l1", OPT_L1, 1}, {"l2", OPT_L2, 1}, {"dropout", OPT_DROPOUT, 1},
    {"momentum", OPT_MOMENTUM, 1}, {"patience", OPT_PATIENCE, 1}, {"lr-decay", OPT_LR_DECAY, 1},
    {"lr-min-ratio", OPT_LR_MIN_RATIO, 1}, {"early-stop", OPT_EARLY_STOP, 1}, {"monitor", OPT_MONITOR, 0},
    {"augment", OPT_AUGMENT, 1}, {"on-nan", OPT_ON_NAN, 0}, {"cost", OPT_COST, 1}, {"init", OPT_INIT, 1}, {"eta", OPT_ETA, 1},
    {"batch", OPT_BATCH, 1}, {"epochs", OPT_EPOCHS, 0}, {"seed", OPT_SEED, 1}, {"no-shuffle", OPT_NO_SHUFFLE, 1},
    {"dataset", OPT_DATASET, 1}, {"train-samples", OPT_TRAIN_SAMPLES, 1}, {"val-samples", OPT_VAL_SAMPLES, 1},
    {"val-split", OPT_VAL_SPLIT, 1}, {"init-from", OPT_INIT_FROM, 1}, {"checkpoint-every", OPT_CKPT_EVERY, 0},
    {"checkpoint-every-steps", OPT_CKPT_EVERY_STEPS, 0}, {"keep", OPT_KEEP, 0},
    {"history-every", OPT_HISTORY_EVERY, 0}, {"probe", OPT_PROBE, 1}, {"probe-layers", OPT_PROBE_LAYERS, 1},
    {"compress", OPT_COMPRESS, 0}, {"data", OPT_DATA, 0}, {"reproducible", OPT_REPRODUCIBLE, 1},
    {"chunk", OPT_CHUNK, 1}, {"overlap", OPT_OVERLAP, 0}, {"reduce", OPT_REDUCE, 0},
    {"split", OPT_SPLIT, 0}};

/* Set one stored value into o; NNDL_EFORMAT if it is not of the right kind. */
static nndl_status apply_key(nndl_options *o, const char *key, const cJSON *v, nndl_err *err)
{
    nndl_config *c = &o->cfg;
    char buf[64];
    const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
    int isnum = cJSON_IsNumber(v);
    nndl_status st = NNDL_OK;
    if (!strcmp(key, "sizes") || !strcmp(key, "probe-layers") || !strcmp(key, "act")) {
        int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1, is_act = !strcmp(key, "act");
        if (n < 0 || n > NNDL_MAX_SIZES) return NNDL_EFORMAT;
        for (int i = 0; i < n; i++) {
            cJSON *it = cJSON_GetArrayItem(v, i);
            if (is_act) {
                int a = cJSON_IsString(it) ? nndl_act_parse(it->valuestring) : -1;
                if (a < 0) return NNDL_EFORMAT;
                c->act[i] = (nndl_act)a;
            } else if (!cJSON_IsNumber(it) || it->valuedouble < 1 || it->valuedouble > (1 << 24)) {
                return NNDL_EFORMAT;
            } else if (!strcmp(key, "sizes")) {
                c->sizes[i] = (int)it->valuedouble;
            } else {
                o->probe_layers[i] = (int)it->valuedouble;
            }
        }
        if (!strcmp(key, "sizes")) c->n_sizes = n;
        else if (!is_act) o->n_probe_layers = n;
        return n >= (strcmp(key, "sizes") ? 0 : 2) ? NNDL_OK : NNDL_EFORMAT;
    }
    if (!strcmp(key, "no-shuffle") || !strcmp(key, "reproducible")) {
        if (!cJSON_IsBool(v)) return NNDL_EFORMAT;
        if (key[0] == 'n') c->shuffle = !cJSON_IsTrue(v);
        else c->reproducible = cJSON_IsTrue(v);
        return NNDL_OK;
    }
    if (!strcmp(key, "monitor") || !strcmp(key, "augment")) { /* lists and names: through the flag parser */
        char buf[256] = "";
        if (cJSON_IsString(v)) snprintf(buf, sizeof buf, "%s", v->valuestring);
        for (int i = 0; cJSON_IsArray(v) && i < cJSON_GetArraySize(v); i++) {
            cJSON *it = cJSON_GetArrayItem(v, i);
            if (!cJSON_IsString(it)) return NNDL_EFORMAT;
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? "," : "", it->valuestring);
        }
        return parse_one(o, !strcmp(key, "monitor") ? OPT_MONITOR : OPT_AUGMENT, buf[0] ? buf : "none", err);
    }
    if (!strcmp(key, "data")) return s && *s && strlen(s) < sizeof o->data_dir ? (strcpy(o->data_dir, s), NNDL_OK) : NNDL_EFORMAT;
    if (!strcmp(key, "init-from")) return s && strlen(s) < sizeof o->init_from ? (strcpy(o->init_from, s), NNDL_OK) : NNDL_EFORMAT;
    static const int opt_of[] = {OPT_COST, OPT_INIT, OPT_DATASET, OPT_VAL_SPLIT, OPT_ON_NAN, OPT_OVERLAP, OPT_REDUCE,
                                 OPT_SPLIT};
    static const char *str_keys[] = {"cost", "init", "dataset", "val-split", "on-nan", "overlap", "reduce", "split"};
    for (int i = 0; i < 8; i++)
        if (!strcmp(key, str_keys[i])) return s ? parse_one(o, opt_of[i], s, err) : NNDL_EFORMAT;
    if (!isnum) return NNDL_EFORMAT;
    if (!strcmp(key, "train-samples") && v->valuedouble == 0) return o->train_samples = 0, NNDL_OK; /* all */
    if (!strcmp(key, "eta") || !strcmp(key, "l1") || !strcmp(key, "l2") || !strcmp(key, "dropout") ||
        !strcmp(key, "momentum") || !strcmp(key, "lr-decay") || !strcmp(key, "lr-min-ratio"))
        snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
    else snprintf(buf, sizeof buf, "%.0f", v->valuedouble);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(key, keys[i].key) && keys[i].opt > 0) st = parse_one(o, keys[i].opt, buf, err);
    return st;
}

nndl_status nndl_options_merge_stored(nndl_options *o, const char *stored_json, const char *run, nndl_err *err)
{
    cJSON *stored = cJSON_Parse(stored_json), *mine = nndl_options_to_json(o);
    nndl_status st = stored ? NNDL_OK : nndl_fail(err, NNDL_EFORMAT, "%s: the stored configuration is not JSON", run);
    for (size_t i = 0; st == NNDL_OK && i < sizeof keys / sizeof *keys; i++) {
        const cJSON *sv = cJSON_GetObjectItem(stored, keys[i].key), *mv = cJSON_GetObjectItem(mine, keys[i].key);
        int given = o->given[keys[i].opt - OPT_SIZES];
        if (!sv) continue; /* a key this run's nndl did not know yet: keep the default */
        if (given && keys[i].strict && !cJSON_Compare(sv, mv, 1)) {
            char *a = cJSON_PrintUnformatted(mv), *b = cJSON_PrintUnformatted(sv);
            st = nndl_fail(err, NNDL_EARG, "--%s %s contradicts the run's stored %s = %s (%s); drop the flag to "
                           "continue the run, or start a new run with --out", keys[i].key, a, keys[i].key, b, run);
            free(a), free(b);
        } else if (!given) {
            nndl_err e2;
            if (apply_key(o, keys[i].key, sv, &e2) != NNDL_OK)
                st = nndl_fail(err, NNDL_EFORMAT, "%s: stored configuration key '%s' has an unexpected value", run,
                               keys[i].key);
        }
    }
    cJSON_Delete(stored), cJSON_Delete(mine);
    return st;
}
