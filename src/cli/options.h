/* options.h: nndl-train's command line -> configuration. Parsing never prints or exits, so the
 * programs, the tests and the fuzzers share it. */
#ifndef NNDL_CLI_OPTIONS_H
#define NNDL_CLI_OPTIONS_H

#include <stdio.h>

#include "nndl/train.h"

typedef struct {
    nndl_config cfg;
    char data_dir[4096]; /* directory of the dataset's IDX files */
    const char *dataset; /* "mnist" or "fashion-mnist" */
    const char *log_path;   /* NULL, a file, or "-" (JSON lines on stdout instead of the human lines) */
    int train_samples;      /* 0 = all the training split can take */
    int val_samples;
    int val_random;         /* 1: seeded random validation split */
    int threads;            /* BLAS threads per rank */
    int progress;           /* -1 auto (on a terminal), 0 never, 1 always */
    int help, version;      /* asked for --help / --version */
} nndl_options;

/* Fill o from argv. On a usage error return NNDL_EARG with a one-line message naming the flag,
 * what was expected, what was found and how to fix it. */
nndl_status nndl_options_parse(nndl_options *o, int argc, char **argv, nndl_err *err);

/* --help text: every flag, its default and an example. */
void nndl_options_usage(FILE *out);

/* "784-30-10" with sep '-', "784,30,10" with ',' */
void nndl_options_sizes_str(const nndl_config *c, char *buf, size_t cap, char sep);

#endif
