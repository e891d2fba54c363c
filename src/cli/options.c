/* options.c: nndl-train's flags, from the table in flags.c (see options.h). */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flags.h"

const char *const nndl_datasets[] = {"mnist", "fashion-mnist"};

/* ---- the table's rows ---- */

static int row_of(const char *name)
{
    for (int i = 0; i < nndl_n_flags; i++)
        if (!strcmp(nndl_flags[i].name, name)) return i;
    return -1;
}

static void *at(nndl_options *o, const flag *f) { return (char *)o + f->off; }
static const void *cat(const nndl_options *o, const flag *f) { return (const char *)o + f->off; }
static int *count_of(nndl_options *o, const flag *f)
{
    return (int *)(void *)((char *)o + f->count);
}

/* Index of name among choices "a|b|c" (len: the name's length), or -1. */
static int choice_index(const char *choices, const char *name, size_t len)
{
    int i = 0;
    for (const char *p = choices; *p; i++) {
        size_t n = strcspn(p, "|");
        if (n == len && !strncmp(p, name, len)) return i;
        p += n + (p[n] == '|');
    }
    return -1;
}

/* Choice i of choices into buf. */
static const char *choice_name(const char *choices, int i, char *buf, size_t cap)
{
    const char *p = choices;
    for (int k = 0; k < i && *p; k++) p += strcspn(p, "|") + (p[strcspn(p, "|")] == '|');
    snprintf(buf, cap, "%.*s", (int)strcspn(p, "|"), p);
    return buf;
}

/* "a, b or c" */
static const char *choices_text(const char *choices, char *buf, size_t cap)
{
    int n = 1;
    for (const char *p = choices; *p; p++) n += *p == '|';
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        char name[64];
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, "%s%s",
                 i == 0       ? ""
                 : i == n - 1 ? " or "
                              : ", ",
                 choice_name(choices, i, name, sizeof name));
    }
    return buf;
}

/* ---- one value ---- */

static nndl_status bad(const flag *f, const char *arg, nndl_err *err)
{
    char what[256];
    if (f->expect)
        snprintf(what, sizeof what, "%s", f->expect);
    else if (f->kind == FLAG_INT || f->kind == FLAG_LONG)
        snprintf(what, sizeof what, "a whole number from %.0f to %.0f", f->lo, f->hi);
    else
        choices_text(f->choices ? f->choices : "", what, sizeof what);
    if (f->example)
        return nndl_fail(err, NNDL_EARG, "--%s: expected %s, found '%s' (e.g. --%s %s)", f->name,
                         what, arg, f->name, f->example);
    return nndl_fail(err, NNDL_EARG, "--%s: expected %s, found '%s'", f->name, what, arg);
}

static nndl_status parse_number(nndl_options *o, const flag *f, const char *arg, nndl_err *err)
{
    char *end;
    errno = 0;
    if (f->kind == FLAG_SEED) {
        if (!*arg || strspn(arg, "0123456789") != strlen(arg) || strlen(arg) > 16 ||
            /* exact in the JSON configuration (a double) */
            strtoull(arg, NULL, 10) >= (1ull << 53))
            return nndl_fail(
                err, NNDL_EARG,
                "--%s: expected a whole number from 0 to 2^53-1, found '%s' (e.g. --%s "
                "%s)",
                f->name, arg, f->name, f->example);
        *(uint64_t *)at(o, f) = strtoull(arg, NULL, 10);
        return NNDL_OK;
    }
    if (f->kind == FLAG_DOUBLE) {
        double v = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(v) || v < f->lo ||
            (f->open_lo && v == f->lo) || v >= f->hi)
            return bad(f, arg, err);
        *(double *)at(o, f) = v;
        return NNDL_OK;
    }
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < f->lo || v > f->hi) return bad(f, arg, err);
    if (f->kind == FLAG_LONG)
        *(long *)at(o, f) = v;
    else
        *(int *)at(o, f) = (int)v;
    return NNDL_OK;
}

/* CHOICE, SET, ACTS: names from the flag's choices (SET and ACTS: comma-separated) */
static nndl_status parse_names(nndl_options *o, const flag *f, const char *arg, nndl_err *err)
{
    if (f->kind == FLAG_CHOICE) {
        int i = choice_index(f->choices, arg, strlen(arg));
        if (i < 0) return bad(f, arg, err);
        *(int *)at(o, f) = i;
        return NNDL_OK;
    }
    int n = 0, *out = at(o, f);
    for (const char *p = arg; *p;) {
        size_t len = strcspn(p, ",");
        int i = choice_index(f->choices, p, len);
        if (f->kind == FLAG_SET && len == 4 && !strncmp(p, "none", 4)) i = -2; /* "none": no bit */
        if (i == -1 || (f->kind == FLAG_ACTS && n == NNDL_MAX_SIZES)) {
            if (f->kind == FLAG_SET) return bad(f, arg, err);
            return nndl_fail(err, NNDL_EARG, "--%s: expected %s, found '%.*s' in '%s'", f->name,
                             f->expect, (int)len, p, arg);
        }
        if (f->kind == FLAG_SET)
            n |= i >= 0 ? 1 << i : 0;
        else
            out[n++] = i;
        p += len + (p[len] == ',');
    }
    if (f->kind == FLAG_SET)
        *out = n;
    else if (n == 0)
        return nndl_fail(err, NNDL_EARG, "--%s: expected %s, found '%s'", f->name, f->expect, arg);
    else
        *count_of(o, f) = n;
    return NNDL_OK;
}

/* INTS: whole numbers in [lo, hi] separated by commas */
static nndl_status parse_ints(nndl_options *o, const flag *f, const char *arg, nndl_err *err)
{
    int n = 0, *out = at(o, f);
    for (const char *p = arg; *p;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < f->lo || v > f->hi || (*end && *end != ','))
            return bad(f, arg, err);
        if (n == NNDL_MAX_SIZES)
            return nndl_fail(err, NNDL_EARG, "--%s: at most %d values, found more in '%s'", f->name,
                             NNDL_MAX_SIZES, arg);
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end && !*p)
            return nndl_fail(err, NNDL_EARG, "--%s: '%s' ends with a comma (e.g. --%s %s)", f->name,
                             arg, f->name, f->example);
    }
    if (n < f->min_n)
        return nndl_fail(err, NNDL_EARG,
                         "--%s: expected at least %d value%s, found '%s' (e.g. --%s %s)", f->name,
                         f->min_n, f->min_n > 1 ? "s" : "", arg, f->name, f->example);
    *count_of(o, f) = n;
    return NNDL_OK;
}

/* One --layers token: conv:FxKxK, pool:PxP or dense:N. */
static nndl_status parse_layer(const char *tok, int len, nndl_layer_spec *out, int *n,
                               nndl_err *err)
{
    char t[64];
    int a = 0, b = 0, c = 0, used = 0;
    snprintf(t, sizeof t, "%.*s", len < 63 ? len : 63, tok);
    const char *hint = "(e.g. --layers conv:20x5x5,pool:2x2,dense:100,dense:10)";
    if (sscanf(t, "conv:%dx%dx%d%n", &a, &b, &c, &used) == 3 && !t[used]) {
        if (a < 1 || a > NNDL_MAX_FILTERS || b < 1 || b > 64 || b != c)
            return nndl_fail(err, NNDL_EARG,
                             "--layers: %s: expected F filters (1 to %d) of a square KxK kernel "
                             "(1 to 64), e.g. conv:20x5x5",
                             t, NNDL_MAX_FILTERS);
        out[(*n)++] = (nndl_layer_spec){NNDL_LAYER_CONV, a, b, 1};
    } else if (sscanf(t, "pool:%dx%d%n", &a, &b, &used) == 2 && !t[used]) {
        if (*n == 0 || out[*n - 1].kind != NNDL_LAYER_CONV || out[*n - 1].pool > 1)
            return nndl_fail(err, NNDL_EARG, "--layers: %s must come right after a conv token %s",
                             t, hint);
        if (a < 2 || a > 64 || a != b)
            return nndl_fail(err, NNDL_EARG,
                             "--layers: %s: expected a square PxP pool, P from 2 to 64 (e.g. "
                             "pool:2x2)",
                             t);
        out[*n - 1].pool = a;
    } else if (sscanf(t, "dense:%d%n", &a, &used) == 1 && !t[used]) {
        if (a < 1 || a > (1 << 24))
            return nndl_fail(err, NNDL_EARG,
                             "--layers: %s: expected 1 to 16777216 units (e.g. dense:100)", t);
        out[(*n)++] = (nndl_layer_spec){NNDL_LAYER_DENSE, a, 0, 1};
    } else {
        return nndl_fail(err, NNDL_EARG, "--layers: '%s' is not conv:FxKxK, pool:PxP or dense:N %s",
                         t, hint);
    }
    return NNDL_OK;
}

/* LAYERS: comma-separated tokens; the last a dense layer (the classes) */
static nndl_status parse_layers(nndl_options *o, const flag *f, const char *arg, nndl_err *err)
{
    nndl_layer_spec *out = at(o, f);
    int n = 0;
    for (const char *p = arg; *p;) {
        int len = (int)strcspn(p, ",");
        if (n == NNDL_MAX_SIZES - 1)
            return nndl_fail(err, NNDL_EARG, "--layers: at most %d layers, found more in '%s'",
                             NNDL_MAX_SIZES - 1, arg);
        nndl_status st = parse_layer(p, len, out, &n, err);
        if (st != NNDL_OK) return st;
        p += len + (p[len] == ',');
    }
    if (n == 0 || out[n - 1].kind != NNDL_LAYER_DENSE)
        return nndl_fail(err, NNDL_EARG,
                         "--layers: '%s' must end with the output layer, dense:10 (e.g. --layers "
                         "%s)",
                         arg, f->example);
    *count_of(o, f) = n;
    return NNDL_OK;
}

static nndl_status parse_value(nndl_options *o, const flag *f, const char *arg, nndl_err *err)
{
    switch (f->kind) {
    case FLAG_INT:
    case FLAG_LONG:
    case FLAG_DOUBLE:
    case FLAG_SEED: return parse_number(o, f, arg, err);
    case FLAG_SWITCH: *(int *)at(o, f) = f->value; return NNDL_OK;
    case FLAG_CHOICE:
    case FLAG_SET:
    case FLAG_ACTS: return parse_names(o, f, arg, err);
    case FLAG_INTS: return parse_ints(o, f, arg, err);
    case FLAG_LAYERS: return parse_layers(o, f, arg, err);
    case FLAG_PATH:
        if (!*arg || strlen(arg) >= 4096 - 64) return bad(f, arg, err);
        strcpy(at(o, f), arg);
        return NNDL_OK;
    }
    return nndl_fail(err, NNDL_EARG, "internal: --%s has an unknown kind", f->name);
}

/* ---- defaults and the command line ---- */

/* The table's default of f (text, parsed, but not held to the flag's range: train-samples 0 = all).
 */
static void set_default(nndl_options *o, const flag *f)
{
    nndl_err err;
    const char *d = f->def;
    if (f->kind == FLAG_SWITCH || f->kind == FLAG_INT)
        *(int *)at(o, f) = atoi(d);
    else if (f->kind == FLAG_LONG)
        *(long *)at(o, f) = atol(d);
    else if (d[0])
        parse_value(o, f, d, &err);
    else if (f->kind == FLAG_PATH)
        ((char *)at(o, f))[0] = 0;
    else if (f->kind == FLAG_SET)
        *(int *)at(o, f) = 0;
    else if (f->count)
        *count_of(o, f) = 0;
}

void nndl_options_init(nndl_options *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < NNDL_MAX_SIZES; i++) o->cfg.act[i] = NNDL_ACT_SIGMOID;
    for (int i = 0; i < nndl_n_flags; i++) /* no def: zero, or set by another row */
        if (nndl_flags[i].def) set_default(o, &nndl_flags[i]);
}

int nndl_options_given(const nndl_options *o, const char *name)
{
    int i = row_of(name);
    return i >= 0 && o->given[i];
}

nndl_status nndl_options_set(nndl_options *o, const char *name, const char *value, nndl_err *err)
{
    int i = row_of(name);
    if (i < 0) return nndl_fail(err, NNDL_EARG, "unknown flag '--%s'", name);
    nndl_status st = parse_value(o, &nndl_flags[i], value ? value : "", err);
    if (st == NNDL_OK) o->given[i] = 1;
    return st;
}

static const struct option *long_options(void)
{
    static struct option opts[NNDL_MAX_FLAGS + 1];
    if (opts[0].name) return opts; /* made once: the table does not change */
    for (int k = 0; k < nndl_n_flags; k++) {
        const flag *f = &nndl_flags[k];
        opts[k] = (struct option){f->name, f->kind == FLAG_SWITCH ? no_argument : required_argument,
                                  NULL, 256 + k};
    }
    return opts;
}

static void default_data_dir(nndl_options *o)
{
    const char *root = getenv("NNDL_DATA");
    snprintf(o->data_dir, sizeof o->data_dir, "%s/%s", root && *root ? root : "data",
             nndl_datasets[o->dataset]);
}

/* --act: one entry for every hidden layer, one per hidden layer, or one per layer where the last
 * must be the output the cost implies (softmax for log-likelihood, sigmoid otherwise). */
static nndl_status resolve_act(nndl_options *o, nndl_err *err)
{
    nndl_config *c = &o->cfg;
    int hidden = nndl_config_depth(c) - 1, n = o->n_act;
    nndl_act out = c->cost == NNDL_COST_LOG_LIKELIHOOD ? NNDL_ACT_SOFTMAX : NNDL_ACT_SIGMOID;
    if (n == 0) return NNDL_OK;
    if (n == hidden + 1 && o->act_list[n - 1] != out)
        return nndl_fail(
            err, NNDL_EARG,
            "--act: the output layer is %s with --cost %s, found %s; drop the last entry "
            "or change --cost",
            nndl_act_name(out), nndl_cost_name(c->cost), nndl_act_name(o->act_list[n - 1]));
    if (n != 1 && n != hidden && n != hidden + 1)
        return nndl_fail(
            err, NNDL_EARG,
            "--act: %d entries for %d hidden layers (--sizes, --layers); give one for all or one "
            "per hidden layer",
            n, hidden);
    for (int l = 0; l < hidden; l++) {
        c->act[l] = o->act_list[n == 1 ? 0 : l];
        if (c->act[l] == NNDL_ACT_SOFTMAX)
            return nndl_fail(
                err, NNDL_EARG,
                "--act: softmax only as the output layer (with --cost log-likelihood)");
    }
    return NNDL_OK;
}

/* What no single flag can check: flags that contradict each other, and what follows from them. */
static nndl_status finish_parse(nndl_options *o, nndl_err *err)
{
    if (nndl_options_given(o, "sizes") && nndl_options_given(o, "layers"))
        return nndl_fail(err, NNDL_EARG,
                         "--sizes with --layers: both give the net; use --layers alone (--sizes "
                         "784,30,10 is --layers dense:30,dense:10)");
    if (o->cfg.n_layers > 0) o->cfg.n_sizes = 0; /* the net is the layers' */
    nndl_status st = resolve_act(o, err);
    if (st != NNDL_OK) return st;
    int convs = 0;
    for (int l = 0; l < o->cfg.n_layers; l++) convs += o->cfg.layers[l].kind == NNDL_LAYER_CONV;
    if (o->cfg.dropout_conv > 0 && convs == 0)
        return nndl_fail(err, NNDL_EARG,
                         "--dropout-conv %g: the net has no conv layer (it drops the last conv "
                         "layer's outputs); give --layers conv:...,dense:... or use --dropout",
                         o->cfg.dropout_conv);
    if (o->cfg.cost == NNDL_COST_LOG_LIKELIHOOD && nndl_config_outputs(&o->cfg) < 2)
        return nndl_fail(err, NNDL_EARG,
                         "--cost log-likelihood needs a softmax over at least 2 outputs");
    if (o->resume[0] && o->out[0] && strcmp(o->resume, o->out) != 0)
        return nndl_fail(err, NNDL_EARG,
                         "--resume %s --out %s: a resumed run keeps writing to its own file; "
                         "drop --out",
                         o->resume, o->out);
    if (o->resume[0] && o->force)
        return nndl_fail(
            err, NNDL_EARG,
            "--resume with --force: --force would delete the run being resumed; drop one");
    if (o->resume[0] && nndl_options_given(o, "init-from"))
        return nndl_fail(err, NNDL_EARG,
                         "--resume with --init-from: a resumed run continues from its own "
                         "checkpoint; drop --init-from");
    if (!o->data_dir[0]) default_data_dir(o);
    return NNDL_OK;
}

nndl_status nndl_options_parse(nndl_options *o, int argc, char **argv, nndl_err *err)
{
    nndl_options_init(o);
    optind = 0; /* GNU: full re-initialisation, so the parser can run more than once */
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":", long_options(), NULL)) != -1) {
        if (opt == '?')
            return nndl_fail(err, NNDL_EARG,
                             "unknown flag '%s'; see nndl-train --help for the flags",
                             argv[optind - 1]);
        if (opt == ':')
            return nndl_fail(err, NNDL_EARG, "%s needs a value; see nndl-train --help",
                             argv[optind - 1]);
        const flag *f = &nndl_flags[opt - 256];
        nndl_status st = parse_value(o, f, optarg ? optarg : "", err);
        if (st != NNDL_OK) return st;
        o->given[opt - 256] = 1;
    }
    if (optind < argc)
        return nndl_fail(err, NNDL_EARG,
                         "unexpected argument '%s': nndl-train takes only flags; see nndl-train "
                         "--help",
                         argv[optind]);
    return finish_parse(o, err);
}

nndl_status nndl_options_check(const nndl_options *o, nndl_err *err)
{
    int L = nndl_config_depth(&o->cfg);
    for (int i = 0; i < o->n_probe_layers; i++)
        if (o->probe_layers[i] > L)
            return nndl_fail(
                err, NNDL_EARG,
                "--probe-layers: layer %d does not exist: the net has %d weight layers "
                "(1 to %d; %d is the output)",
                o->probe_layers[i], L, L, L);
    if (o->cfg.chunk > 0 && !o->cfg.reproducible)
        return nndl_fail(err, NNDL_EARG,
                         "--chunk %d: chunks are the --reproducible mode's; add --reproducible or "
                         "drop --chunk",
                         o->cfg.chunk);
    if (o->cfg.chunk > o->cfg.batch)
        return nndl_fail(err, NNDL_EARG,
                         "--chunk %d is larger than --batch %d; use --chunk %d or less",
                         o->cfg.chunk, o->cfg.batch, o->cfg.batch);
    if (o->cfg.reproducible && o->threads > 1)
        return nndl_fail(
            err, NNDL_EARG,
            "--threads %d with --reproducible: the reproducible mode uses 1 BLAS thread "
            "per rank (threaded GEMMs may sum in another order); drop --threads",
            o->threads);
    if (o->probe > o->val_samples)
        return nndl_fail(err, NNDL_EARG,
                         "--probe %d: only %d validation images to probe (--val-samples); use "
                         "--probe %d or less",
                         o->probe, o->val_samples, o->val_samples);
    return NNDL_OK;
}

/* ---- the stored configuration ---- */

static cJSON *names_json(const flag *f, const int *idx, int n)
{
    cJSON *a = cJSON_CreateArray();
    char name[64];
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(choice_name(f->choices, idx[i], name, 64)));
    return a;
}

static cJSON *value_json(const nndl_options *o, const flag *f)
{
    const void *v = cat(o, f);
    char name[64], abs[PATH_MAX];
    int bits[8], n = 0;
    switch (f->kind) {
    case FLAG_INT: return cJSON_CreateNumber(*(const int *)v);
    case FLAG_LONG: return cJSON_CreateNumber((double)*(const long *)v);
    case FLAG_DOUBLE: return cJSON_CreateNumber(*(const double *)v);
    case FLAG_SEED: return cJSON_CreateNumber((double)*(const uint64_t *)v); /* < 2^53: exact */
    case FLAG_SWITCH: return cJSON_CreateBool(*(const int *)v == f->value);
    case FLAG_CHOICE:
        return cJSON_CreateString(choice_name(f->choices, *(const int *)v, name, sizeof name));
    case FLAG_SET:
        for (int i = 0; i < 8; i++)
            if (*(const int *)v & 1 << i) bits[n++] = i;
        return names_json(f, bits, n);
    case FLAG_PATH:
        return cJSON_CreateString(f->absolute && realpath(v, abs) ? abs : (const char *)v);
    case FLAG_INTS:
        return cJSON_CreateIntArray(v, *(const int *)(const void *)((const char *)o + f->count));
    case FLAG_ACTS: /* as resolved: one per hidden layer */
        return names_json(f, (const int *)o->cfg.act, nndl_config_depth(&o->cfg) - 1);
    case FLAG_LAYERS: {
        char spec[4096];
        nndl_config_layers_str(&o->cfg, spec, sizeof spec);
        return cJSON_CreateString(spec);
    }
    }
    return cJSON_CreateNull();
}

cJSON *nndl_options_to_json(const nndl_options *o)
{
    cJSON *j = cJSON_CreateObject();
    for (int i = 0; i < nndl_n_flags; i++)
        if (nndl_flags[i].resume != RESUME_LAUNCH)
            cJSON_AddItemToObject(j, nndl_flags[i].name, value_json(o, &nndl_flags[i]));
    return j;
}

/* A stored value as the text a user would have typed ("a,b" for arrays); 0 if it is of the wrong
 * kind. */
static int stored_text(const flag *f, const cJSON *v, char *buf, size_t cap)
{
    buf[0] = 0;
    if (cJSON_IsString(v)) return snprintf(buf, cap, "%s", v->valuestring) < (int)cap;
    if (cJSON_IsNumber(v))
        return snprintf(buf, cap, f->kind == FLAG_DOUBLE ? "%.17g" : "%.0f", v->valuedouble) > 0;
    for (int i = 0; cJSON_IsArray(v) && i < cJSON_GetArraySize(v); i++) {
        const cJSON *it = cJSON_GetArrayItem(v, i);
        size_t used = strlen(buf);
        if (cJSON_IsString(it))
            snprintf(buf + used, cap - used, "%s%s", i ? "," : "", it->valuestring);
        else if (cJSON_IsNumber(it))
            snprintf(buf + used, cap - used, "%s%.0f", i ? "," : "", it->valuedouble);
        else
            return 0;
    }
    return cJSON_IsArray(v);
}

/* Set one stored value into o; NNDL_EFORMAT if it is not of the flag's kind or range. The default
 * value is always taken (e.g. train-samples 0 = all, init-from ""). */
static nndl_status apply_stored(nndl_options *o, const flag *f, const cJSON *v)
{
    char text[4096];
    nndl_err e;
    if (f->kind == FLAG_SWITCH) {
        if (!cJSON_IsBool(v)) return NNDL_EFORMAT;
        *(int *)at(o, f) = cJSON_IsTrue(v) ? f->value : atoi(f->def);
        return NNDL_OK;
    }
    if (!stored_text(f, v, text, sizeof text)) return NNDL_EFORMAT;
    if (f->def && !strcmp(text, f->def)) { /* the default, as the defaults set it */
        set_default(o, f);
        return NNDL_OK;
    }
    if (!text[0] &&
        (f->kind == FLAG_INTS || f->kind == FLAG_ACTS || f->kind == FLAG_LAYERS)) { /* none */
        *count_of(o, f) = 0;
        return NNDL_OK;
    }
    return parse_value(o, f, text, &e) == NNDL_OK ? NNDL_OK : NNDL_EFORMAT;
}

nndl_status nndl_options_merge_stored(nndl_options *o, const char *stored_json, const char *run,
                                      nndl_err *err)
{
    cJSON *stored = cJSON_Parse(stored_json), *mine = nndl_options_to_json(o);
    nndl_status st =
        stored ? NNDL_OK
               : nndl_fail(err, NNDL_EFORMAT, "%s: the stored configuration is not JSON", run);
    for (int i = 0; st == NNDL_OK && i < nndl_n_flags; i++) {
        const flag *f = &nndl_flags[i];
        const cJSON *sv = cJSON_GetObjectItem(stored, f->name),
                    *mv = cJSON_GetObjectItem(mine, f->name);
        /* a key this run's nndl did not know: the default */
        if (!sv || f->resume == RESUME_LAUNCH) continue;
        /* --sizes and --layers are two ways to give the net: giving either gives both */
        int given =
            o->given[i] || ((!strcmp(f->name, "sizes") || !strcmp(f->name, "layers")) &&
                            (nndl_options_given(o, "sizes") || nndl_options_given(o, "layers")));
        if (given && f->resume == RESUME_STRICT && !cJSON_Compare(sv, mv, 1)) {
            char *a = cJSON_PrintUnformatted(mv), *b = cJSON_PrintUnformatted(sv);
            st = nndl_fail(err, NNDL_EARG,
                           "--%s %s contradicts the run's stored %s = %s (%s); drop the flag to "
                           "continue the run, or start a new run with --out",
                           f->name, a, f->name, b, run);
            free(a);
            free(b);
        } else if (!given && apply_stored(o, f, sv) != NNDL_OK) {
            st = nndl_fail(err, NNDL_EFORMAT,
                           "%s: stored configuration key '%s' has an unexpected value", run,
                           f->name);
        }
    }
    cJSON_Delete(stored);
    cJSON_Delete(mine);
    nndl_err e;
    if (o->cfg.n_layers > 0) o->cfg.n_sizes = 0;
    if (st == NNDL_OK && resolve_act(o, &e) != NNDL_OK)
        st = nndl_fail(err, NNDL_EFORMAT, "%s: the stored activations do not fit the stored sizes",
                       run);
    return st;
}

void nndl_options_sizes_str(const nndl_config *c, char *buf, size_t cap, char sep)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < c->n_sizes && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%.*s%d", i > 0, &sep, c->sizes[i]);
}
