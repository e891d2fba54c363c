/* nndl-eval RUN.h5 [--split test|val|train] [--model latest|best] [--data DIR]
 * nndl-eval --ensemble RUN.h5 RUN.h5 ... [the same flags]
 * Load a run's checkpoint, report accuracy, cost and the confusion matrix on a split, and store
 * them in the run file as /eval/SPLIT; or the plurality vote of several runs' models (the book's
 * last result). Runs on one rank or under mpirun (sharded). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nndl/dist.h"
#include "nndl/eval.h"
#include "nndl/runfile.h"
#include "nndl/version.h"
#include "session.h"

/* ---- usage ---- */

static void usage(FILE *f)
{
    fputs(
        "usage: nndl-eval RUN.h5 [--split test|val|train] [--model latest|best] [--data DIR]\n"
        "       nndl-eval --ensemble RUN.h5 RUN.h5 ... [--split ...] [--model ...] [--data ...]\n"
        "Evaluate a run's model (its last checkpoint, or the best epoch's parameters) on a split:\n"
        "accuracy, mean cost and the confusion matrix (rows = true label, columns = predicted),\n"
        "printed and stored in the run file as /eval/SPLIT/confusion.\n"
        "  --split NAME   test (10,000 test images), val or train   [test]\n"
        "  --model WHICH  latest: the last checkpoint; best: the best validation epoch  [latest]\n"
        "  --data DIR     where the dataset's files are now        [the run's --data default]\n"
        "  --ensemble     the plurality vote of the runs' models (ties: the largest summed "
        "output):\n"
        "                 each run's accuracy, the ensemble's, and its confusion matrix (printed)\n"
        "Example: nndl-eval runs/ch1.h5 --split test --model best\n",
        f);
}

/* ---- evaluation ---- */

/* A run's model on every rank: its stored configuration, the data, the net and the checkpoint's
 * parameters (or the best epoch's); *epoch = the epoch they are of. COLLECTIVE. */
static nndl_status load_model(const nndl_run_paths *p, int best, const char *data,
                              const nndl_dist *d, nndl_dataset *ds, nndl_net **net, int *epoch,
                              nndl_err *err)
{
    nndl_options o;
    char *cfg = NULL, ckpt[4400] = "";
    nndl_run r = {0};
    nndl_train_state z = {0}; /* the position only: the velocity is not needed to evaluate */
    nndl_options_init(&o);
    nndl_status st =
        data ? nndl_options_set(&o, "data", data, err) : NNDL_OK; /* where they are now */
    if (st == NNDL_OK && d->rank == 0) st = nndl_runfile_open(p, &cfg, ckpt, sizeof ckpt, err);
    if (st == NNDL_OK && d->rank == 0 && !ckpt[0])
        st = nndl_fail(err, NNDL_EARG,
                       "%s: no checkpoint yet (the run stopped before its first); "
                       "nothing to evaluate",
                       p->main);
    if ((st = nndl_dist_agree(d, st, err, NULL)) == NNDL_OK) st = nndl_dist_bcast_str(d, &cfg, err);
    if (st == NNDL_OK) st = nndl_options_merge_stored(&o, cfg, p->main, err);
    if (st == NNDL_OK) st = nndl_dataset_load(ds, &o, d, err);
    if (st == NNDL_OK) st = create_net(&o.cfg, ds, net, err);
    if (st == NNDL_OK && d->rank == 0) st = nndl_runfile_load_checkpoint(ckpt, &r, *net, &z, err);
    if (st == NNDL_OK && d->rank == 0 && best && !r.best_params)
        st = nndl_fail(err, NNDL_EARG, "%s: no best model recorded yet; use --model latest",
                       p->main);
    if (st == NNDL_OK && d->rank == 0 && best)
        memcpy((*net)->params, r.best_params, sizeof(float) * (*net)->n_params);
    *epoch = best ? r.best_epoch : z.epoch;
    free(cfg);
    nndl_run_free(&r);
    if ((st = nndl_dist_agree(d, st, err, NULL)) != NNDL_OK) return st;
    if ((st = nndl_dist_bcast(d, (*net)->params, sizeof(float) * (*net)->n_params, err)) != NNDL_OK)
        return st;
    return nndl_dist_bcast(d, epoch, sizeof *epoch, err);
}

/* Rank 0: print the accuracy, cost and confusion matrix, and store them as /eval/SPLIT. */
static nndl_status report(const nndl_run_paths *p, const char *split, int best, int epoch, int n,
                          double acc, double cost, const double *conf, int m, nndl_err *err)
{
    printf("%s: %s model (epoch %d) on %s (%d samples): accuracy %.4f, cost %.4f\n", p->main,
           best ? "best" : "latest", epoch, split, n, acc, cost);
    printf("confusion matrix (rows = true label, columns = predicted):\n     ");
    for (int j = 0; j < m; j++) printf("%6d", j);
    printf("\n");
    int64_t ci[NNDL_MAX_SIZES * NNDL_MAX_SIZES];
    for (int i = 0; i < m; i++) {
        printf("%5d", i);
        for (int j = 0; j < m; j++) {
            ci[i * m + j] = (int64_t)conf[i * m + j];
            printf("%6lld", (long long)ci[i * m + j]);
        }
        printf("\n");
    }
    nndl_status st = nndl_runfile_store_eval(p, split, ci, m, acc, cost, epoch, err);
    if (st == NNDL_OK) printf("stored as /eval/%s in %s\n", split, p->main);
    return st;
}

static nndl_status eval(const char *run, const char *split, int best, const char *data,
                        const nndl_dist *d, nndl_err *err)
{
    nndl_run_paths p;
    nndl_dataset ds = {0};
    nndl_net *net = NULL;
    int epoch = 0;
    nndl_run_paths_of(&p, run);
    nndl_status st = load_model(&p, best, data, d, &ds, &net, &epoch, err);
    double acc, cost, conf[NNDL_MAX_SIZES * NNDL_MAX_SIZES];
    int m = net ? net->sizes[net->n_layers] : 0;
    if (st == NNDL_OK && m > NNDL_MAX_SIZES)
        st = nndl_fail(err, NNDL_EARG, "%d classes: at most %d supported", m, NNDL_MAX_SIZES);
    const nndl_split *s = !strcmp(split, "test")  ? &ds.test
                          : !strcmp(split, "val") ? &ds.val
                                                  : &ds.train;
    if (st == NNDL_OK) st = nndl_eval_split(net, s, d, &acc, &cost, err);
    if (st == NNDL_OK) st = nndl_eval_confusion(net, s, d, conf, err);
    if (st == NNDL_OK && d->rank == 0)
        st = report(&p, split, best, epoch, s->n, acc, cost, conf, m, err);
    st = nndl_dist_agree(d, st, err, NULL);
    nndl_net_free(net);
    nndl_dataset_free(&ds);
    return st;
}

/* ---- ensembles: the plurality vote of several runs ---- */

typedef struct {
    int first, len, m;      /* this rank's shard of the split; outputs per sample */
    double *votes, *sums;   /* [len x m] */
    uint8_t *labels;        /* [len] */
    double correct[64 + 1]; /* each run's correct predictions, then the vote's */
} votes_t;

static const nndl_split *split_of(const nndl_dataset *ds, const char *split)
{
    return !strcmp(split, "test") ? &ds->test : !strcmp(split, "val") ? &ds->val : &ds->train;
}

/* Run i's model on this rank's shard: its vote and its outputs into v. */
static nndl_status add_run(nndl_net *net, const nndl_split *s, int i, const char *run, votes_t *v,
                           nndl_err *err)
{
    int L = net->n_layers, m = net->sizes[L];
    if (!v->votes) { /* the first run sets the shapes */
        v->m = m;
        v->votes = calloc((size_t)(v->len ? v->len : 1) * m, sizeof(double));
        v->sums = calloc((size_t)(v->len ? v->len : 1) * m, sizeof(double));
        v->labels = malloc(v->len ? (size_t)v->len : 1);
        if (!v->votes || !v->sums || !v->labels)
            return nndl_fail(err, NNDL_ENOMEM, "out of memory");
    }
    if (m != v->m)
        return nndl_fail(err, NNDL_EARG, "%s: %d outputs, the first run's model has %d", run, m,
                         v->m);
    float *out = malloc(sizeof(float) * (v->len ? (size_t)v->len * m : 1));
    nndl_status st = out ? nndl_eval_activations(net, s, v->first, v->len, &L, 1, &out, err)
                         : nndl_fail(err, NNDL_ENOMEM, "out of memory");
    for (int r = 0; st == NNDL_OK && r < v->len; r++) {
        uint8_t y = s->src->labels[s->idx[v->first + r]];
        if (i == 0) v->labels[r] = y;
        if (v->labels[r] != y)
            st = nndl_fail(
                err, NNDL_EARG,
                "%s: its data differ from the first run's; an ensemble votes on one data set", run);
        const float *o = out + (size_t)r * m;
        int pick = 0;
        for (int j = 0; j < m; j++) {
            pick = o[j] > o[pick] ? j : pick;
            v->sums[(size_t)r * m + j] += o[j];
        }
        v->votes[(size_t)r * m + pick] += 1.0;
        v->correct[i] += pick == y;
    }
    free(out);
    return st;
}

/* The vote of every sample of this rank (ties: the largest summed output) into conf [m x m]. */
static void vote(votes_t *v, int n_runs, double *conf)
{
    int m = v->m;
    memset(conf, 0, sizeof *conf * m * m);
    for (int r = 0; r < v->len; r++) {
        const double *vt = v->votes + (size_t)r * m, *sm = v->sums + (size_t)r * m;
        int pick = 0;
        for (int j = 1; j < m; j++)
            pick = vt[j] > vt[pick] || (vt[j] == vt[pick] && sm[j] > sm[pick]) ? j : pick;
        conf[v->labels[r] * m + pick] += 1.0;
        v->correct[n_runs] += pick == v->labels[r];
    }
}

static void ensemble_report(char **runs, int n_runs, const char *split, int best, int n,
                            const votes_t *v, const double *conf)
{
    for (int i = 0; i < n_runs; i++)
        printf("%s: %s model: accuracy %.4f on %s (%d samples)\n", runs[i],
               best ? "best" : "latest", v->correct[i] / n, split, n);
    printf("ensemble of %d (plurality vote, ties to the largest summed output): accuracy %.4f\n",
           n_runs, v->correct[n_runs] / n);
    printf("confusion matrix (rows = true label, columns = predicted):\n     ");
    for (int j = 0; j < v->m; j++) printf("%6d", j);
    printf("\n");
    for (int i = 0; i < v->m; i++) {
        printf("%5d", i);
        for (int j = 0; j < v->m; j++) printf("%6.0f", conf[i * v->m + j]);
        printf("\n");
    }
}

static nndl_status ensemble(char **runs, int n_runs, const char *split, int best, const char *data,
                            const nndl_dist *d, nndl_err *err)
{
    votes_t v = {0};
    double conf[NNDL_MAX_SIZES * NNDL_MAX_SIZES];
    int n = 0;
    nndl_status st =
        n_runs > 64 ? nndl_fail(err, NNDL_EARG, "--ensemble: at most 64 runs, found %d", n_runs)
                    : NNDL_OK;
    for (int i = 0; i < n_runs && st == NNDL_OK; i++) {
        nndl_run_paths p;
        nndl_dataset ds = {0};
        nndl_net *net = NULL;
        int epoch = 0;
        nndl_run_paths_of(&p, runs[i]);
        st = load_model(&p, best, data, d, &ds, &net, &epoch, err);
        if (st == NNDL_OK && i == 0) {
            n = split_of(&ds, split)->n;
            nndl_dist_shard(n, d->size, d->rank, &v.first, &v.len);
        }
        if (st == NNDL_OK && net->sizes[net->n_layers] > NNDL_MAX_SIZES)
            st = nndl_fail(err, NNDL_EARG, "%s: more than %d classes", runs[i], NNDL_MAX_SIZES);
        if (st == NNDL_OK) st = add_run(net, split_of(&ds, split), i, runs[i], &v, err);
        nndl_net_free(net);
        nndl_dataset_free(&ds);
        st = nndl_dist_agree(d, st, err, NULL);
    }
    if (st == NNDL_OK) vote(&v, n_runs, conf);
    if (st == NNDL_OK) st = nndl_dist_sum_doubles(d, conf, v.m * v.m, err);
    if (st == NNDL_OK) st = nndl_dist_sum_doubles(d, v.correct, n_runs + 1, err);
    if (st == NNDL_OK && d->rank == 0) ensemble_report(runs, n_runs, split, best, n, &v, conf);
    free(v.votes);
    free(v.sums);
    free(v.labels);
    return st;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    nndl_dist d;
    nndl_err err = {0};
    const char *split = "test", *data = NULL;
    int best = 0, help = 0, ens = 0;
    nndl_status st = nndl_dist_init(&d, MPI_COMM_WORLD, &err);
    static const struct option opts[] = {
        {"split", 1, 0, 's'},    {"model", 1, 0, 'm'},   {"data", 1, 0, 'd'}, {"help", 0, 0, 'h'},
        {"ensemble", 0, 0, 'e'}, {"version", 0, 0, 'V'}, {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while (st == NNDL_OK && (c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 's' &&
            (!strcmp(optarg, "test") || !strcmp(optarg, "val") || !strcmp(optarg, "train")))
            split = optarg;
        else if (c == 's')
            st = nndl_fail(&err, NNDL_EARG, "--split: expected test, val or train, found '%s'",
                           optarg);
        else if (c == 'm' && (!strcmp(optarg, "latest") || !strcmp(optarg, "best")))
            best = !strcmp(optarg, "best");
        else if (c == 'm')
            st = nndl_fail(&err, NNDL_EARG, "--model: expected latest or best, found '%s'", optarg);
        else if (c == 'd')
            data = optarg;
        else if (c == 'e')
            ens = 1;
        else if (c == 'h')
            help = 1;
        else if (c == 'V')
            help = 2;
        else
            st = nndl_fail(&err, NNDL_EARG, "%s '%s'; see nndl-eval --help",
                           c == ':' ? "missing value for" : "unknown flag", argv[optind - 1]);
    }
    if (st == NNDL_OK && !help && ens && argc - optind < 2)
        st = nndl_fail(&err, NNDL_EARG,
                       "--ensemble: expected two or more run files (e.g. nndl-eval --ensemble a.h5 "
                       "b.h5 c.h5), "
                       "found %d",
                       argc - optind);
    if (st == NNDL_OK && !help && !ens && optind != argc - 1)
        st = nndl_fail(&err, NNDL_EARG,
                       "expected one run file (e.g. nndl-eval runs/ch1.h5), found %d arguments",
                       argc - optind);
    if (st == NNDL_OK && help) {
        if (d.rank == 0) help == 1 ? usage(stdout) : (void)printf("nndl-eval %s\n", NNDL_VERSION);
    } else if (st == NNDL_OK) {
        st = ens ? ensemble(argv + optind, argc - optind, split, best, data, &d, &err)
                 : eval(argv[optind], split, best, data, &d, &err);
        if (st != NNDL_OK && !err.silent) fprintf(stderr, "nndl-eval: error: %s\n", err.msg);
    } else if (d.rank == 0) {
        fprintf(stderr, "nndl-eval: error: %s\n", err.msg);
    }
    MPI_Finalize();
    return nndl_exit_status(st);
}
