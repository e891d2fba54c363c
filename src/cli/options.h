/* options.h: nndl-train's command line -> configuration, and the configuration as the JSON the
 * run file stores (keys = the long flag names without the leading dashes). Parsing never prints
 * or exits, so the programs, the tests and the fuzzers share it. */
#ifndef NNDL_CLI_OPTIONS_H
#define NNDL_CLI_OPTIONS_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "nndl/train.h"

enum {
    OPT_SIZES = 256, OPT_ETA, OPT_BATCH, OPT_EPOCHS, OPT_COST, OPT_INIT, OPT_SEED, OPT_DATA, OPT_DATASET, OPT_LOG,
    OPT_TRAIN_SAMPLES, OPT_VAL_SAMPLES, OPT_VAL_SPLIT, OPT_NO_SHUFFLE, OPT_THREADS, OPT_PROGRESS, OPT_NO_PROGRESS,
    OPT_OUT, OPT_FORCE, OPT_RESUME, OPT_CKPT_EVERY, OPT_CKPT_EVERY_STEPS, OPT_KEEP, OPT_HISTORY_EVERY, OPT_PROBE,
    OPT_PROBE_LAYERS, OPT_COMPRESS, OPT_INIT_FROM, OPT_STOP_AFTER_STEPS, OPT_ACT, OPT_L1, OPT_L2, OPT_DROPOUT,
    OPT_MOMENTUM, OPT_PATIENCE, OPT_LR_DECAY, OPT_LR_MIN_RATIO, OPT_EARLY_STOP, OPT_MONITOR, OPT_AUGMENT, OPT_VERBOSE, OPT_ON_NAN, OPT_REPRODUCIBLE, OPT_CHUNK, OPT_OVERLAP, OPT_REDUCE, OPT_SPLIT, OPT_HELP, OPT_VERSION, OPT_END
};

typedef struct {
    nndl_config cfg;
    char data_dir[4096];   /* directory of the dataset's IDX files */
    const char *dataset;   /* "mnist" or "fashion-mnist" */
    const char *log_path;  /* NULL, a file, or "-" (JSON lines on stdout instead of the human lines) */
    int train_samples;     /* 0 = all the training split can take */
    int val_samples;
    int val_random;        /* 1: seeded random validation split */
    int threads;           /* BLAS threads per rank */
    int progress;          /* -1 auto (on a terminal), 0 never, 1 always */
    /* the run file */
    char out[4096];        /* "" = runs/run-DATE-TIME.h5 */
    int force;             /* replace an existing run at --out */
    char resume[4096];     /* "" or the run to continue */
    char init_from[4096];  /* "" or an HDF5 file with /model/layer_K */
    int checkpoint_every;  /* epochs; 0 = only at the end */
    long checkpoint_every_steps;
    int keep;              /* checkpoints kept */
    int history_every;     /* epochs between weight snapshots; 0 = none */
    int probe;             /* probe images (first of the validation split); 0 = none */
    int n_probe_layers;    /* 0 = every hidden layer */
    int probe_layers[NNDL_MAX_SIZES];
    int compress;          /* gzip level of the weight history, 0 = none */
    long stop_after_steps; /* checkpoint and exit 75 after this many steps of this launch (0: never) */
    int n_act;             /* --act entries as given (resolved into cfg.act at the end of parsing) */
    nndl_act act_list[NNDL_MAX_SIZES];
    int verbose;           /* --verbose: each rank's binding */
    int help, version;     /* asked for --help / --version */
    char given[OPT_END - OPT_SIZES]; /* which flags the command line gave */
} nndl_options;

/* Fill o from argv. On a usage error return NNDL_EARG with a one-line message naming the flag,
 * what was expected, what was found and how to fix it. */
nndl_status nndl_options_parse(nndl_options *o, int argc, char **argv, nndl_err *err);

/* Checks that need the network's depth (e.g. --probe-layers within 1..L). */
nndl_status nndl_options_check(const nndl_options *o, nndl_err *err);

/* The configuration as JSON (caller deletes). */
cJSON *nndl_options_to_json(const nndl_options *o);

/* Resume: take the stored configuration (JSON text from a run file) for every flag the command
 * line did not give; a given flag that contradicts a stored setting of the model or data is an
 * error naming both values (--epochs may differ: it is the new total). */
nndl_status nndl_options_merge_stored(nndl_options *o, const char *stored_json, const char *run, nndl_err *err);

/* --help text: every flag, its default and an example. */
void nndl_options_usage(FILE *out);

/* "784-30-10" with sep '-', "784,30,10" with ',' */
void nndl_options_sizes_str(const nndl_config *c, char *buf, size_t cap, char sep);

#endif
