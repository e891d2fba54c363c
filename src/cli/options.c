/* options.c: getopt_long parsing and checking of nndl-train's flags (see options.h). */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_SIZES = 256, OPT_ETA, OPT_BATCH, OPT_EPOCHS, OPT_COST, OPT_INIT, OPT_SEED, OPT_DATA, OPT_DATASET,
       OPT_LOG, OPT_TRAIN_SAMPLES, OPT_VAL_SAMPLES, OPT_VAL_SPLIT, OPT_NO_SHUFFLE, OPT_THREADS, OPT_PROGRESS,
       OPT_NO_PROGRESS, OPT_HELP, OPT_VERSION };

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
        "  --eta F                learning rate, > 0                           [3.0]\n"
        "  --batch N              global mini-batch size (split across ranks)  [10]\n"
        "  --epochs N             epochs to train                              [30]\n"
        "  --seed N               seed of every random draw (init, shuffling)  [1]\n"
        "  --no-shuffle           visit the training samples in file order every epoch\n"
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
        "Output and resources\n"
        "  --log FILE             JSON Lines: one object per epoch, then one with test_accuracy;\n"
        "                         '-' writes them to stdout instead of the human lines\n"
        "  --progress, --no-progress   progress bar within the epoch           [on a terminal]\n"
        "  --threads N            BLAS threads per rank                        [1]\n"
        "  --help, --version\n"
        "\n"
        "Example (the book's chapter-3 network on 2 ranks, JSON log):\n"
        "  mpirun -np 2 nndl-train --sizes 784,100,10 --cost cross-entropy --init nielsen \\\n"
        "      --eta 0.5 --epochs 30 --log runs/ch3.jsonl\n"
        "Exit status: 0 done, 2 bad flags or input files, 1 other failures.\n",
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
    o->dataset = "mnist";
    o->val_samples = 10000;
    o->threads = 1;
    o->progress = -1;
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
        if (!*arg || strspn(arg, "0123456789") != strlen(arg) || strlen(arg) > 19)
            return nndl_fail(err, NNDL_EARG, "--seed: expected a whole number from 0 to 10^19-1, found '%s' "
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
    }
    if (optind < argc)
        return nndl_fail(err, NNDL_EARG, "unexpected argument '%s': nndl-train takes only flags; "
                         "see nndl-train --help", argv[optind]);
    if (o->cfg.cost == NNDL_COST_LOG_LIKELIHOOD && o->cfg.sizes[o->cfg.n_sizes - 1] < 2)
        return nndl_fail(err, NNDL_EARG, "--cost log-likelihood needs a softmax over at least 2 outputs");
    if (!o->data_dir[0]) {
        const char *root = getenv("NNDL_DATA");
        snprintf(o->data_dir, sizeof o->data_dir, "%s/%s", root && *root ? root : "data", o->dataset);
    }
    return NNDL_OK;
}
