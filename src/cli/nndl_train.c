/* nndl-train: mpirun -np P nndl-train [FLAGS]. Options -> data -> network -> epochs -> test.
 * Every rank runs this same program; only rank 0 prints. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nndl/dist.h"
#include "nndl/train.h"
#include "nndl/version.h"
#include "options.h"

typedef struct {
    const nndl_options *o;
    int rank0;
    FILE *json;      /* JSON lines, or NULL */
    int human;       /* print the human lines */
    int bar;         /* draw a progress bar on stderr */
    double last_bar; /* when it was last drawn */
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
    fprintf(stderr, "\repoch %d [%.*s%*s] %3d%%", epoch, done, "##############################", width - done, "",
            (int)(100 * step / n_steps));
    fflush(stderr);
}

static void on_epoch(void *ctx, const nndl_epoch_metrics *m)
{
    report *r = ctx;
    if (!r->rank0) return;
    if (r->bar) fprintf(stderr, "\r%60s\r", "");
    if (r->human) {
        printf("epoch %3d/%d  train_cost %.4f  val_acc %.4f  val_cost %.4f  %6.2f s  %8.0f samples/s\n", m->epoch,
               r->o->cfg.epochs, m->train_cost, m->val_accuracy, m->val_cost, m->seconds, m->samples_per_s);
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
        char *s = cJSON_PrintUnformatted(j);
        if (s) fprintf(r->json, "%s\n", s), fflush(r->json);
        free(s);
        cJSON_Delete(j);
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

/* ---- data ---- */

typedef struct {
    nndl_images train_file, test_file;
    nndl_split train, val, test;
} dataset;

static nndl_status load_data(dataset *ds, const nndl_options *o, nndl_err *err)
{
    char p_img[4200], p_lab[4200], hint[9000];
    const char *dir = o->data_dir;
    snprintf(hint, sizeof hint, "the %s files were looked for in %s; fetch them with: tools/fetch-data %s --dir %s "
             "(or point --data / NNDL_DATA at them)", o->dataset, dir, o->dataset, dir);
    nndl_data_find(p_img, sizeof p_img, dir, "train-images-idx3-ubyte");
    nndl_data_find(p_lab, sizeof p_lab, dir, "train-labels-idx1-ubyte");
    nndl_status st = nndl_images_load(&ds->train_file, p_img, p_lab, 10, hint, err);
    if (st != NNDL_OK) return st;
    nndl_data_find(p_img, sizeof p_img, dir, "t10k-images-idx3-ubyte");
    nndl_data_find(p_lab, sizeof p_lab, dir, "t10k-labels-idx1-ubyte");
    st = nndl_images_load(&ds->test_file, p_img, p_lab, 10, hint, err);
    if (st != NNDL_OK) return st;
    int avail = ds->train_file.n - o->val_samples;
    if (avail < 1)
        return nndl_fail(err, NNDL_EARG, "--val-samples %d: the training file has only %d samples; "
                         "leave at least one for training", o->val_samples, ds->train_file.n);
    if (o->train_samples > avail)
        return nndl_fail(err, NNDL_EARG, "--train-samples %d: only %d samples are left for training after "
                         "--val-samples %d (%s has %d); use --train-samples %d or less", o->train_samples, avail,
                         o->val_samples, o->dataset, ds->train_file.n, avail);
    int n_train = o->train_samples ? o->train_samples : avail;
    st = nndl_split_train_val(&ds->train, &ds->val, &ds->train_file, n_train, o->val_samples, o->val_random,
                              o->cfg.seed, err);
    if (st == NNDL_OK) st = nndl_split_range(&ds->test, &ds->test_file, 0, ds->test_file.n, err);
    return st;
}

static void free_data(dataset *ds)
{
    nndl_split_free(&ds->train), nndl_split_free(&ds->val), nndl_split_free(&ds->test);
    nndl_images_free(&ds->train_file), nndl_images_free(&ds->test_file);
}

static nndl_status check_sizes(const nndl_options *o, const dataset *ds, nndl_err *err)
{
    const nndl_config *c = &o->cfg;
    int in = ds->train_file.rows * ds->train_file.cols, out = ds->train_file.n_classes;
    char s[1024];
    nndl_options_sizes_str(c, s, sizeof s, ',');
    if (c->sizes[0] != in || c->sizes[c->n_sizes - 1] != out)
        return nndl_fail(err, NNDL_EARG, "--sizes %s: %s has %d inputs (%dx%d pixels) and %d classes, so the first "
                         "size must be %d and the last %d (e.g. --sizes %d,30,%d)", s, o->dataset, in,
                         ds->train_file.rows, ds->train_file.cols, out, in, out, in, out);
    return NNDL_OK;
}

/* ---- main ---- */

static nndl_status run(const nndl_options *o, const nndl_dist *d, report *rep, nndl_err *err, int *reporter)
{
    dataset ds;
    memset(&ds, 0, sizeof ds);
    nndl_net *net = NULL;
    nndl_trainer tr;
    memset(&tr, 0, sizeof tr);
    nndl_status st = load_data(&ds, o, err);
    if (st == NNDL_OK) st = check_sizes(o, &ds, err);
    if (st == NNDL_OK && d->rank == 0 && o->log_path && strcmp(o->log_path, "-") != 0 &&
        !(rep->json = fopen(o->log_path, "a")))
        st = nndl_fail(err, NNDL_EARG, "--log %s: cannot open for writing: %s; check the directory exists and is "
                       "writable", o->log_path, strerror(errno));
    if (st == NNDL_OK) st = nndl_net_create(&net, o->cfg.sizes, o->cfg.n_sizes, o->cfg.act, o->cfg.cost, err);
    if (st == NNDL_OK) {
        nndl_net_init(net, o->cfg.init, o->cfg.seed);
        st = nndl_trainer_init(&tr, net, &o->cfg, &ds.train, &ds.val, d, err);
    }
    if ((st = nndl_dist_agree(d, st, err, reporter)) != NNDL_OK) goto out;
    if (rep->rank0 && rep->human) {
        char s[1024];
        nndl_options_sizes_str(&o->cfg, s, sizeof s, '-');
        printf("nndl-train %s: %s sigmoid, %s cost, %s init, eta %g, batch %d, %d epochs, seed %llu; %d rank%s\n",
               NNDL_VERSION, s, nndl_cost_name(o->cfg.cost), nndl_init_name(o->cfg.init), o->cfg.eta, o->cfg.batch,
               o->cfg.epochs, (unsigned long long)o->cfg.seed, d->size, d->size > 1 ? "s" : "");
        printf("data: %s from %s: %d training, %d validation (%s), %d test samples\n", o->dataset, o->data_dir,
               ds.train.n, ds.val.n, o->val_random ? "random" : "last of the training file", ds.test.n);
        fflush(stdout);
    }
    nndl_train_hooks hooks = {rep, on_epoch, on_progress};
    double t0 = wall();
    for (int e = 0; e < o->cfg.epochs && st == NNDL_OK; e++) {
        nndl_epoch_metrics m;
        st = nndl_trainer_epoch(&tr, &hooks, &m, err);
    }
    double acc = 0, cost = 0;
    if (st == NNDL_OK) st = nndl_trainer_evaluate(&tr, &ds.test, &acc, &cost, err);
    if ((st = nndl_dist_agree(d, st, err, reporter)) != NNDL_OK) goto out;
    double total = wall() - t0;
    if (rep->rank0 && rep->human)
        printf("test accuracy %.4f (test cost %.4f); best validation accuracy %.4f at epoch %d; %.1f s in all\n", acc,
               cost, tr.best_val_accuracy, tr.best_epoch, total);
    if (rep->rank0 && rep->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "test_accuracy", acc);
        cJSON_AddNumberToObject(j, "test_cost", cost);
        cJSON_AddNumberToObject(j, "best_val_accuracy", tr.best_val_accuracy);
        cJSON_AddNumberToObject(j, "best_epoch", tr.best_epoch);
        cJSON_AddNumberToObject(j, "epochs", tr.epoch);
        cJSON_AddNumberToObject(j, "total_seconds", total);
        cJSON_AddNumberToObject(j, "ranks", d->size);
        char *s = cJSON_PrintUnformatted(j);
        if (s) fprintf(rep->json, "%s\n", s);
        free(s);
        cJSON_Delete(j);
    }
out:
    nndl_trainer_free(&tr);
    nndl_net_free(net);
    free_data(&ds);
    return st;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    nndl_dist d;
    nndl_err err = {0};
    nndl_options o;
    int reporter = 0;
    nndl_status st = nndl_dist_init(&d, MPI_COMM_WORLD, &err);
    if (st == NNDL_OK) st = nndl_options_parse(&o, argc, argv, &err);
    reporter = d.rank == 0; /* every rank parsed the same argv: rank 0 speaks for all */
    if (st == NNDL_OK && (o.help || o.version)) {
        if (d.rank == 0) o.help ? nndl_options_usage(stdout) : (void)printf("nndl-train %s\n", NNDL_VERSION);
    } else if (st == NNDL_OK) {
        openblas_set_num_threads(o.threads);
        report rep = {&o, d.rank == 0, NULL, 1, 0, 0.0};
        if (o.log_path && strcmp(o.log_path, "-") == 0) rep.json = stdout, rep.human = 0;
        rep.bar = d.rank == 0 && rep.human && (o.progress == 1 || (o.progress == -1 && on_terminal()));
        st = run(&o, &d, &rep, &err, &reporter);
        if (rep.json && rep.json != stdout) fclose(rep.json);
    }
    if (st != NNDL_OK && reporter) fprintf(stderr, "nndl-train: error: %s\n", err.msg);
    MPI_Finalize();
    return nndl_exit_status(st);
}
