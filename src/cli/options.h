/* options.h: nndl-train's flags. One table (flags.c) says, for every flag, its name, kind, where it
 * is stored, its range, default and help text, and whether a resume must agree with it; the parser,
 * --help, the configuration the run file stores (keys = the flag names), the resume merge and
 * docs/flags.md are all made from it. Parsing never prints or exits, so the programs, the tests and
 * the fuzzers share it. */
#ifndef NNDL_CLI_OPTIONS_H
#define NNDL_CLI_OPTIONS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

#include "nndl/config.h"

enum { NNDL_MONITOR_TRAIN = 1, NNDL_MONITOR_TEST = 2, NNDL_MONITOR_SPEED = 4 }; /* --monitor */
enum { NNDL_PROGRESS_AUTO = -1, NNDL_PROGRESS_OFF, NNDL_PROGRESS_ON };

#define NNDL_MAX_FLAGS 64

typedef struct {
    nndl_config cfg;
    int monitor;         /* NNDL_MONITOR_* bits */
    int speed_samples;   /* --monitor speed: the first N training samples */
    int dataset;         /* index into nndl_datasets */
    char data_dir[4096]; /* directory of the dataset's IDX files */
    /* "", a file, or "-" (JSON lines on stdout instead of the human lines) */
    char log[4096];
    int train_samples; /* 0 = all the training split can take */
    int val_samples;
    int val_random; /* 1: seeded random validation split */
    int threads;    /* BLAS threads per rank */
    int progress;   /* NNDL_PROGRESS_* */
    /* the run file */
    char out[4096];       /* "" = runs/run-DATE-TIME.h5 */
    int force;            /* replace an existing run at --out */
    char resume[4096];    /* "" or the run to continue */
    char init_from[4096]; /* "" or an HDF5 file with /model/layer_K */
    int checkpoint_every; /* epochs; 0 = only at the end */
    long checkpoint_every_steps;
    int keep;           /* checkpoints kept */
    int history_every;  /* epochs between weight snapshots; 0 = none */
    int probe;          /* probe images (first of the validation split); 0 = none */
    int probe_conv;     /* of those, how many have conv layers' feature maps recorded */
    int n_probe_layers; /* 0 = every hidden layer */
    int probe_layers[NNDL_MAX_SIZES];
    int compress; /* gzip level of the weight history, 0 = none */
    /* checkpoint and exit 75 after this many steps of this launch (0: never) */
    long stop_after_steps;
    /* --act entries as given (resolved into cfg.act at the end of parsing) */
    int n_act;
    nndl_act act_list[NNDL_MAX_SIZES];
    int verbose; /* --verbose: each rank's binding */
    int help, help_markdown, version;
    char given[NNDL_MAX_FLAGS]; /* which flags the command line gave, by their row in the table */
} nndl_options;

extern const char *const nndl_datasets[]; /* "mnist", "fashion-mnist" */

/* The defaults (the book's chapter-1 network). */
void nndl_options_init(nndl_options *o);

/* Fill o from argv (after nndl_options_init's defaults). On a usage error return NNDL_EARG with a
 * one-line message naming the flag, what was expected, what was found and how to fix it. */
nndl_status nndl_options_parse(nndl_options *o, int argc, char **argv, nndl_err *err);

/* Set one flag as if the command line gave --name value (value NULL for a switch). */
nndl_status nndl_options_set(nndl_options *o, const char *name, const char *value, nndl_err *err);

/* 1 if the command line (or nndl_options_set) gave --name. */
int nndl_options_given(const nndl_options *o, const char *name);

/* Checks that need the network's depth (e.g. --probe-layers within 1..L). */
nndl_status nndl_options_check(const nndl_options *o, nndl_err *err);

/* The configuration as JSON: every flag a run stores (caller deletes). */
cJSON *nndl_options_to_json(const nndl_options *o);

/* Resume: take the stored configuration (JSON text from a run file) for every flag the command
 * line did not give; a given flag that contradicts a stored setting of the model or data is an
 * error naming both values (--epochs may differ: it is the new total). */
nndl_status nndl_options_merge_stored(nndl_options *o, const char *stored_json, const char *run,
                                      nndl_err *err);

/* --help text: every flag, its default and an example. */
void nndl_options_usage(FILE *out);

/* docs/flags.md: every flag as Markdown tables (nndl-train --help-markdown). */
void nndl_options_markdown(FILE *out);

/* "784-30-10" with sep '-', "784,30,10" with ',' */
void nndl_options_sizes_str(const nndl_config *c, char *buf, size_t cap, char sep);

#endif
