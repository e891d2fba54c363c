/* nndl-train: mpirun -np P nndl-train [FLAGS]. Options -> data -> network -> epochs -> test.
 * Every rank runs this same program; only rank 0 prints. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nndl/dist.h"
#include "nndl/eval.h"
#include "nndl/safeio.h"
#include "nndl/topo.h"
#include "nndl/train.h"
#include "nndl/version.h"
#include "options.h"
#include "session.h"

typedef struct {
    const nndl_options *o;
    int rank0;
    FILE *json;      /* JSON lines, or NULL */
    int human;       /* print the human lines */
    int bar;         /* draw a progress bar on stderr */
    double last_bar; /* when it was last drawn */
    nndl_session *session;
} report;

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_progress(void *ctx, int epoch, long step, long n_steps)
{
    report *r = ctx;
    if (!r->bar) return;
    double t = wall();
    if (t - r->last_bar < 0.1 && step < n_steps) return;
    r->last_bar = t;
    int width = 30, done = (int)(width * step / n_steps);
    fprintf(stderr, "\repoch %d [%.*s%*s] %3d%%", epoch, done, "##############################",
            width - done, "", (int)(100 * step / n_steps));
    fflush(stderr);
}

/* --monitor speed: the speeds of epoch, if measured: "  speed 0.0030 0.0171 ..." (human), or a
 * "speed" list (JSON), input side first. */
static void print_speed(const report *r, int epoch, cJSON *j)
{
    const nndl_session *s = r->session;
    if (s->speed_epoch != epoch) return;
    int L = s->net->n_layers;
    if (j) {
        cJSON_AddItemToObject(j, "speed", cJSON_CreateDoubleArray(s->speed, L));
        return;
    }
    printf("  speed of learning (input side first):");
    for (int l = 0; l < L; l++) printf(" %.4g", s->speed[l]);
    printf("\n");
}

/* One line of the JSON log, and j freed. */
static void emit(const report *r, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    if (s) {
        fprintf(r->json, "%s\n", s);
        fflush(r->json);
    }
    free(s);
    cJSON_Delete(j);
}

/* Epoch 0 (--monitor speed on a new run): the starting speeds, before any training. */
static void on_start(report *r)
{
    if (!r->rank0 || r->session->speed_epoch != 0) return;
    if (r->human) {
        printf("epoch   0\n");
        print_speed(r, 0, NULL);
        fflush(stdout);
    }
    if (r->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "epoch", 0);
        print_speed(r, 0, j);
        emit(r, j);
    }
}

static void on_epoch(void *ctx, const nndl_epoch_metrics *m)
{
    report *r = ctx;
    if (!r->rank0) return;
    const double *row = r->session->last_row;
    const nndl_config *c = &r->o->cfg;
    const nndl_schedule_state *sc = &nndl_trainer_state(r->session->tr)->sched;
    static const int extra[] = {NNDL_M_TRAIN_ACCURACY, NNDL_M_TRAIN_FULL_COST, NNDL_M_TEST_ACCURACY,
                                NNDL_M_TEST_COST};
    if (r->bar) fprintf(stderr, "\r%60s\r", "");
    if (r->human) {
        char more[256] = "";
        if (r->o->monitor & NNDL_MONITOR_TRAIN)
            snprintf(more + strlen(more), sizeof more - strlen(more), "  train_acc %.4f",
                     row[NNDL_M_TRAIN_ACCURACY]);
        if (r->o->monitor & NNDL_MONITOR_TEST)
            snprintf(more + strlen(more), sizeof more - strlen(more), "  test_acc %.4f",
                     row[NNDL_M_TEST_ACCURACY]);
        if (c->patience > 0)
            snprintf(more + strlen(more), sizeof more - strlen(more), "  eta %g", m->learning_rate);
        printf("epoch %3d/%d  train_cost %.4f  val_acc %.4f  val_cost %.4f%s  %6.2f s  %8.0f "
               "samples/s\n",
               m->epoch, r->o->cfg.epochs, m->train_cost, m->val_accuracy, m->val_cost, more,
               m->seconds, m->samples_per_s);
        print_speed(r, m->epoch, NULL);
        if (m->skipped)
            printf("  %ld batch%s skipped: non-finite cost (--on-nan skip-batch)\n", m->skipped,
                   m->skipped > 1 ? "es" : "");
        if (sc->eta != m->learning_rate && !sc->stopped)
            printf("  no better validation accuracy for %d epochs: eta %g -> %g\n", c->patience,
                   m->learning_rate, sc->eta);
        if (sc->stopped)
            printf("  stopping: %s\n", c->early_stop > 0 && sc->since_best >= c->early_stop
                                           ? "no better validation accuracy for --early-stop epochs"
                                           : "eta fell below eta0 / --lr-min-ratio");
        fflush(stdout);
    }
    if (r->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "epoch", m->epoch);
        cJSON_AddNumberToObject(j, "train_cost", m->train_cost);
        cJSON_AddNumberToObject(j, "val_accuracy", m->val_accuracy);
        cJSON_AddNumberToObject(j, "val_cost", m->val_cost);
        cJSON_AddNumberToObject(j, "learning_rate", m->learning_rate);
        cJSON_AddNumberToObject(j, "seconds", m->seconds);
        cJSON_AddNumberToObject(j, "samples_per_s", m->samples_per_s);
        cJSON_AddNumberToObject(j, "eval_seconds", m->eval_seconds);
        for (int i = 0; i < 4; i++)
            if (!isnan(row[extra[i]]))
                cJSON_AddNumberToObject(j, nndl_metric_names[extra[i]], row[extra[i]]);
        print_speed(r, m->epoch, j);
        if (sc->stopped) cJSON_AddBoolToObject(j, "schedule_stop", 1);
        if (m->skipped) cJSON_AddNumberToObject(j, "skipped_batches", (double)m->skipped);
        emit(r, j);
    }
}

/* Is the user watching a terminal? Under mpirun a rank's stdout is always a pseudo-terminal that
 * Open MPI made and its stderr always a pipe, whatever mpirun itself writes to; so ask about the
 * launcher's standard output instead (mpirun starts the local ranks as its children). */
static int on_terminal(void)
{
    if (getenv("SLURM_PROCID")) return 0; /* srun: output goes to the job's log */
    if (!getenv("OMPI_COMM_WORLD_SIZE")) return isatty(STDERR_FILENO); /* not under mpirun */
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/%d/fd/1", (int)getppid());
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = 0;
    return strncmp(target, "/dev/pts/", 9) == 0 || strncmp(target, "/dev/tty", 8) == 0;
}

static nndl_status on_step(void *ctx, nndl_err *err)
{
    return nndl_session_on_step(((report *)ctx)->session, err);
}

/* ---- signals: stop at the next step, checkpoint, exit 75; a second one aborts ---- */

static volatile int stop_requested;

static void on_signal(int sig)
{
    if (stop_requested) { /* the second: abort at once */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_requested = sig;
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* ---- where the rank runs: hwloc binding, oversubscription ---- */

static nndl_status place_rank(const nndl_dist *d, const nndl_options *o, int yielding,
                              nndl_err *err)
{
    MPI_Comm node;
    int lr = 0, ls = 1;
    if (MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_rank(node, &lr);
        MPI_Comm_size(node, &ls);
        MPI_Comm_free(&node);
    }
    nndl_topo t;
    nndl_status st = nndl_topo_init(&t, lr, ls, err);
    if (st != NNDL_OK) return st;
    if (d->rank == 0 && t.oversubscribed)
        fprintf(stderr,
                "nndl-train: warning: %d ranks share %d cores on this node (oversubscribed): "
                "expect it to be "
                "slower than %d ranks%s\n",
                ls, t.cores, t.cores, yielding ? "; the ranks yield while they wait" : "");
    if (o->verbose) { /* every rank's binding, printed by rank 0 in rank order */
        char line[256], *all = d->rank == 0 ? malloc(sizeof line * d->size) : NULL;
        snprintf(line, sizeof line, "rank %d: node rank %d/%d, cores {%s}%s, %d BLAS thread%s",
                 d->rank, lr, ls, t.binding, t.bound_by_us ? " (bound by nndl)" : " (as launched)",
                 o->threads, o->threads > 1 ? "s" : "");
        MPI_Gather(line, sizeof line, MPI_CHAR, all, sizeof line, MPI_CHAR, 0, d->comm);
        for (int r = 0; d->rank == 0 && r < d->size; r++) printf("%s\n", all + r * sizeof line);
        free(all);
    }
    return NNDL_OK;
}

/* ---- main ---- */

static void print_header(const nndl_session *s, const nndl_dist *d)
{
    const nndl_options *o = s->o;
    char sz[2048], acts[512] = "";
    nndl_options_sizes_str(&o->cfg, sz, sizeof sz, '-');
    if (o->cfg.n_layers > 0) { /* the layers, then the values per sample they pass on */
        nndl_config_layers_str(&o->cfg, sz, sizeof sz);
        for (int l = 0; l <= s->net->n_layers; l++)
            snprintf(sz + strlen(sz), sizeof sz - strlen(sz), "%s%d", l ? "-" : " = ",
                     s->net->sizes[l]);
    }
    for (int l = 0; l < s->net->n_layers; l++)
        snprintf(acts + strlen(acts), sizeof acts - strlen(acts), "%s%s", l ? "," : "",
                 nndl_act_name(s->net->act[l]));
    printf("nndl-train %s: %s (%s), %s cost, %s init, eta %g, batch %d, %d epochs, seed %llu; %d "
           "rank%s\n",
           NNDL_VERSION, sz, acts, nndl_cost_name(o->cfg.cost),
           o->init_from[0] ? "from file" : nndl_init_name(o->cfg.init), o->cfg.eta, o->cfg.batch,
           o->cfg.epochs, (unsigned long long)o->cfg.seed, d->size, d->size > 1 ? "s" : "");
    const nndl_config *c = &o->cfg;
    if (c->l1 > 0 || c->l2 > 0 || c->dropout > 0 || c->momentum > 0 || c->patience > 0 ||
        c->early_stop > 0 || c->augment)
        printf("chapter 3: l1 %g, l2 %g, dropout %g, momentum %g, patience %d (decay %g, min ratio "
               "%g), early stop %d, "
               "augment %s\n",
               c->l1, c->l2, c->dropout, c->momentum, c->patience, c->lr_decay, c->lr_min_ratio,
               c->early_stop, c->augment ? "shift" : "none");
    printf("data: %s from %s: %d training, %d validation (%s), %d test samples; one copy per node, "
           "shared by "
           "%d rank%s\n",
           nndl_datasets[o->dataset], o->data_dir, s->ds.train.n, s->ds.val.n,
           o->val_random ? "random" : "last of the training file", s->ds.test.n,
           s->ds.share.node_size, s->ds.share.node_size > 1 ? "s" : "");
    char step[256];
    nndl_step_plan_name(&s->plan, step, sizeof step);
    printf("step: %s (%s)\n", step, s->plan.why);
    const nndl_train_state *z = nndl_trainer_state(s->tr);
    if (s->resumed)
        printf("run file: %s (resumed after epoch %d, step %ld)\n", o->out, z->epoch, z->step);
    else
        printf("run file: %s\n", o->out);
    fflush(stdout);
}

static nndl_status run(nndl_options *o, const nndl_dist *d, report *rep, int argc, char **argv,
                       nndl_err *err)
{
    nndl_session s;
    nndl_status st = NNDL_OK;
    if (d->rank == 0 && o->log[0] && strcmp(o->log, "-") != 0 && !(rep->json = fopen(o->log, "a")))
        st = nndl_fail(err, NNDL_EARG,
                       "--log %s: cannot open for writing: %s; check the directory exists and is "
                       "writable",
                       o->log, strerror(errno));
    if ((st = nndl_dist_agree(d, st, err, NULL)) != NNDL_OK) return st;
    nndl_train_hooks hooks = {.ctx = rep,
                              .on_progress = on_progress,
                              .on_step = on_step,
                              .stop_request = &stop_requested,
                              .stop_after_steps = o->stop_after_steps};
    rep->session = &s;
    st = nndl_session_start(&s, o, d, argc, argv, &hooks, err);
    if (st == NNDL_OK && rep->rank0 && rep->human) print_header(&s, d);
    if (st == NNDL_OK) on_start(rep);
    double t0 = wall();
    while (st == NNDL_OK && nndl_session_more(&s)) {
        nndl_epoch_metrics m;
        st = nndl_trainer_epoch(s.tr, &m, err);
        if (st == NNDL_OK) st = nndl_session_epoch_end(&s, &m, err);
        if (st == NNDL_OK) on_epoch(rep, &m);
    }
    double acc = 0, cost = 0;
    if (st == NNDL_OK) st = nndl_eval_split(s.net, &s.ds.test, d, &acc, &cost, err);
    st = nndl_dist_agree(d, st, err, NULL);
    st = nndl_session_finish(&s, st, err);
    double total = wall() - t0;
    /* the final weights' fingerprint: the same bits give the same hex */
    char wsha[NNDL_SHA256_HEX] = "";
    if (st == NNDL_OK && rep->rank0)
        nndl_sha256_bytes(s.net->params, sizeof(float) * s.net->n_params, wsha);
    if (st == NNDL_OK && rep->rank0 && rep->human)
        printf("test accuracy %.4f (test cost %.4f); best validation accuracy %.4f at epoch %d "
               "(test %.4f); %.1f s\n"
               "run file: %s\nweights SHA-256: %s\n",
               acc, cost, s.run.best_val, s.run.best_epoch, s.run.best_test, total, o->out, wsha);
    if (st == NNDL_OK && rep->rank0 && rep->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "test_accuracy", acc);
        cJSON_AddNumberToObject(j, "test_cost", cost);
        cJSON_AddNumberToObject(j, "best_val_accuracy", s.run.best_val);
        cJSON_AddNumberToObject(j, "best_epoch", s.run.best_epoch);
        cJSON_AddNumberToObject(j, "best_test_accuracy", s.run.best_test);
        cJSON_AddNumberToObject(j, "epochs", nndl_trainer_state(s.tr)->epoch);
        cJSON_AddNumberToObject(j, "total_seconds", total);
        cJSON_AddNumberToObject(j, "ranks", d->size);
        cJSON_AddStringToObject(j, "run_file", o->out);
        cJSON_AddStringToObject(j, "weights_sha256", wsha);
        char *js = cJSON_PrintUnformatted(j);
        if (js) fprintf(rep->json, "%s\n", js);
        free(js);
        cJSON_Delete(j);
    }
    nndl_session_free(&s);
    return st;
}

int main(int argc, char **argv)
{
    int yielding = nndl_topo_prepare(); /* before MPI_Init: Open MPI reads it there */
    MPI_Init(&argc, &argv);
    catch_signals(); /* early: a scheduler's warning during start-up must not kill a rank */
    nndl_dist d;
    nndl_err err = {0};
    nndl_options o;
    nndl_status st = nndl_dist_init(&d, MPI_COMM_WORLD, &err);
    if (st == NNDL_OK) st = nndl_options_parse(&o, argc, argv, &err);
    int parsed = st == NNDL_OK; /* every rank parsed the same argv: rank 0 speaks for all */
    if (st == NNDL_OK && (o.help || o.help_markdown || o.version)) {
        if (d.rank == 0 && o.help)
            nndl_options_usage(stdout);
        else if (d.rank == 0 && o.help_markdown)
            nndl_options_markdown(stdout);
        else if (d.rank == 0)
            printf("nndl-train %s\n", NNDL_VERSION);
    } else if (st == NNDL_OK) {
        openblas_set_num_threads(o.threads);
        st = place_rank(&d, &o, yielding, &err);
        report rep = {&o, d.rank == 0, NULL, 1, 0, 0.0, NULL};
        if (strcmp(o.log, "-") == 0) {
            rep.json = stdout;
            rep.human = 0;
        }
        rep.bar =
            d.rank == 0 && rep.human &&
            (o.progress == NNDL_PROGRESS_ON || (o.progress == NNDL_PROGRESS_AUTO && on_terminal()));
        if (st == NNDL_OK) st = run(&o, &d, &rep, argc, argv, &err);
        if (rep.json && rep.json != stdout) fclose(rep.json);
    }
    if (st == NNDL_ESTOP && d.rank == 0)
        fprintf(stderr,
                "nndl-train: %s%s; checkpoint written to %s; continue with --resume %s (exit "
                "status 75)\n",
                err.msg,
                stop_requested == SIGUSR1   ? " by SIGUSR1"
                : stop_requested == SIGTERM ? " by SIGTERM"
                : stop_requested == SIGINT  ? " by SIGINT"
                                            : "",
                o.out, o.out);
    else if (st != NNDL_OK && (parsed ? !err.silent : d.rank == 0))
        fprintf(stderr, "nndl-train: error: %s\n", err.msg);
    MPI_Finalize();
    return nndl_exit_status(st);
}
