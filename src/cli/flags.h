/* flags.h: the table of nndl-train's flags (flags.c), read by options.c. */
#ifndef NNDL_CLI_FLAGS_H
#define NNDL_CLI_FLAGS_H

#include <stddef.h>

typedef enum {
    FLAG_INT,    /* int in [lo, hi] */
    FLAG_LONG,   /* long in [lo, hi] */
    FLAG_DOUBLE, /* finite double in [lo, hi), or (lo, hi) with open_lo */
    FLAG_SEED,   /* uint64_t below 2^53 (exact in the JSON configuration) */
    FLAG_SWITCH, /* no value: sets the int to `value`; stored as a JSON boolean */
    FLAG_CHOICE, /* one of `choices` ("a|b|c"): its index, an int; stored as the name */
    FLAG_SET,    /* some of `choices`, comma-separated: a bit mask; stored as an array of names */
    FLAG_PATH,   /* a path, into a char[4096]; stored as a string */
    /* comma-separated whole numbers in [lo, hi]: an int array with its count at `count` */
    FLAG_INTS,
    FLAG_ACTS,  /* comma-separated activations (--act): resolved per hidden layer after parsing */
    FLAG_LAYERS /* --layers: conv:FxKxK, pool:PxP, dense:N tokens: nndl_layer_spec[], counted at
                   `count` */
} flag_kind;

typedef enum {
    RESUME_STRICT, /* stored; a resume must agree (the model, the data, the optimisation) */
    /* stored; a resume may change it (where and how often things are written, how to run) */
    RESUME_FREE,
    RESUME_LAUNCH /* not stored: this launch only */
} flag_resume;

typedef struct {
    const char *name; /* --name, and its key in the stored configuration */
    flag_kind kind;
    size_t off;          /* offsetof(nndl_options, ...) */
    double lo, hi;       /* range (INT, LONG, DOUBLE, INTS) */
    int open_lo;         /* DOUBLE: lo itself is out of range */
    const char *choices; /* CHOICE, SET, ACTS: "a|b|c" */
    int value;           /* SWITCH: what it sets */
    size_t count;        /* INTS, ACTS: offsetof the int that counts the values */
    int min_n;           /* INTS: the fewest values */
    int absolute;        /* PATH: stored as an absolute path (realpath) */
    const char *def;     /* the default as a user would type it ("" or NULL: none) */
    const char *shown;   /* the default as --help shows it, when def does not say it */
    const char *meta;    /* the value's name in --help: N, F, LIST, FILE */
    const char *expect;  /* what a bad value is told it should be, when the kind does not say it */
    const char *example; /* a good value, for messages */
    flag_resume resume;
    const char *section; /* its heading in --help and docs/flags.md */
    const char *help;    /* lines separated by \n */
} flag;

extern const flag nndl_flags[];
extern const int nndl_n_flags;

#endif
