/* session.c: nndl-train's run on every rank, with the run file (see session.h). */
#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- data ---- */

nndl_status nndl_dataset_load(nndl_dataset *ds, const nndl_options *o, const nndl_dist *d, nndl_err *err)
{
    char hint[9000];
    const char *dir = o->data_dir;
    const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                            "t10k-labels-idx1-ubyte"};
    snprintf(hint, sizeof hint, "the %s files were looked for in %s; fetch them with: tools/fetch-data %s --dir %s "
             "(or point --data / NNDL_DATA at them)", o->dataset, dir, o->dataset, dir);
    for (int i = 0; i < 4; i++) nndl_data_find(ds->paths[i], sizeof ds->paths[i], dir, names[i]);
    nndl_status st = nndl_dist_node_init(d, &ds->share, err);
    if (st != NNDL_OK) return st;
    for (int k = 0; k < 2; k++) { /* node rank 0 reads; every rank of the node then shares its copy */
        nndl_images *im = k ? &ds->test_file : &ds->train_file;
        if (ds->share.node_rank == 0) st = nndl_images_load(im, ds->paths[2 * k], ds->paths[2 * k + 1], 10, hint, err);
        if ((st = nndl_dist_share_images(&ds->share, im, st, err)) != NNDL_OK) return st;
    }
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
    if (st != NNDL_OK) return st;
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

void nndl_dataset_free(nndl_dataset *ds)
{
    nndl_split_free(&ds->train), nndl_split_free(&ds->val), nndl_split_free(&ds->test);
    nndl_images_free(&ds->train_file), nndl_images_free(&ds->test_file);
    nndl_dist_node_free(&ds->share); /* collective over the node: every rank frees its dataset */
}

/* {"train-images-idx3-ubyte": "sha256", ...} of the four files (rank 0) */
static nndl_status dataset_sha(const nndl_dataset *ds, char **out, nndl_err *err)
{
    cJSON *j = cJSON_CreateObject();
    for (int i = 0; i < 4; i++) {
        char sha[NNDL_SHA256_HEX], b[4200];
        nndl_status st = nndl_sha256_file(ds->paths[i], sha, err);
        if (st != NNDL_OK) return cJSON_Delete(j), st;
        snprintf(b, sizeof b, "%s", strrchr(ds->paths[i], '/') ? strrchr(ds->paths[i], '/') + 1 : ds->paths[i]);
        char *dot = strstr(b, ".gz");
        if (dot) *dot = 0; /* the same data, raw or gzipped, has the same name (not the same sum) */
        cJSON_AddStringToObject(j, b, sha);
    }
    *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return NNDL_OK;
}

/* ---- the run file's place ---- */

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Remove the files nndl writes in a companion directory (--force), or only the temporaries. */
static void clear_files(const char *dir, int only_tmp)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *n = e->d_name;
        int ours = !strncmp(n, "MANIFEST.json", 13) || !strncmp(n, "ckpt-", 5) || !strncmp(n, "hist-", 5) ||
                   !strncmp(n, "act-", 4) || !strncmp(n, "eval.h5", 7);
        if ((ours && !only_tmp) || (ours && strstr(n, ".tmp"))) {
            char p[4500];
            snprintf(p, sizeof p, "%s/%s", dir, n);
            unlink(p);
        }
    }
    if (d) closedir(d);
}
static void clear_dir(const char *dir) { clear_files(dir, 0); }
static void clear_tmp(const char *dir) { clear_files(dir, 1); }

/* Rank 0: choose and check the run file's path before any training. */
static nndl_status prepare_out(nndl_options *o, nndl_err *err)
{
    if (!o->out[0]) {
        time_t now = time(NULL);
        struct tm tm;
        char stamp[32];
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        if (mkdir("runs", 0777) != 0 && errno != EEXIST)
            return nndl_fail(err, NNDL_EARG, "--out: cannot create the default directory runs/: %s; give --out FILE",
                             strerror(errno));
        snprintf(o->out, sizeof o->out, "runs/run-%s.h5", stamp);
        for (int k = 2; exists(o->out) && k < 1000; k++) snprintf(o->out, sizeof o->out, "runs/run-%s-%d.h5", stamp, k);
    }
    nndl_run_paths p;
    nndl_run_paths_of(&p, o->out);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", o->out);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else strcpy(dir, ".");
    nndl_status st = nndl_check_writable_dir(dir, "--out", err);
    if (st != NNDL_OK) return st;
    if ((exists(p.main) || exists(p.dir)) && !o->force)
        return nndl_fail(err, NNDL_EARG, "--out %s: a run is already there; continue it with --resume %s, choose "
                         "another --out, or replace it with --force", o->out, o->out);
    if (o->force) {
        unlink(p.main);
        clear_dir(p.dir);
    }
    if (mkdir(p.dir, 0777) != 0 && errno != EEXIST)
        return nndl_fail(err, NNDL_EARG, "--out: cannot create %s: %s", p.dir, strerror(errno));
    return NNDL_OK;
}

/* ---- snapshots: weights (rank 0) and probe activations (every rank its rows) ---- */

static nndl_status probes_setup(nndl_session *s, nndl_err *err)
{
    nndl_options *o = s->o;
    nndl_run *r = &s->run;
    int L = s->net->n_layers;
    r->n_probe = o->history_every > 0 ? o->probe : 0;
    r->n_probe_layers = 0;
    if (o->n_probe_layers)
        for (int i = 0; i < o->n_probe_layers; i++) r->probe_layers[r->n_probe_layers++] = o->probe_layers[i];
    else
        for (int l = 1; l < L; l++) r->probe_layers[r->n_probe_layers++] = l; /* every hidden layer */
    if (r->n_probe_layers == 0) r->n_probe = 0; /* no hidden layer, no layer asked for */
    r->probe_index = malloc(sizeof(int) * (r->n_probe ? r->n_probe : 1));
    r->probe_label = malloc((size_t)(r->n_probe ? r->n_probe : 1));
    if (!r->probe_index || !r->probe_label) return nndl_fail(err, NNDL_ENOMEM, "out of memory for probes");
    for (int i = 0; i < r->n_probe; i++) {
        r->probe_index[i] = s->ds.val.idx[i];
        r->probe_label[i] = s->ds.train_file.labels[s->ds.val.idx[i]];
    }
    nndl_dist_shard(r->n_probe, s->d->size, s->d->rank, &s->probe_first, &s->probe_rows);
    for (int k = 0; k < r->n_probe_layers; k++) {
        size_t n = (size_t)(s->probe_rows ? s->probe_rows : 1) * s->net->sizes[r->probe_layers[k]];
        if (!(s->act[k] = malloc(sizeof(float) * n))) return nndl_fail(err, NNDL_ENOMEM, "out of memory for probes");
    }
    return NNDL_OK;
}

static void probe_forward(nndl_session *s)
{
    nndl_trainer *t = &s->tr;
    const nndl_run *r = &s->run;
    for (int i = 0; i < s->probe_rows; i += t->rows) {
        int k = s->probe_rows - i < t->rows ? s->probe_rows - i : t->rows;
        nndl_split_gather_range(&s->ds.val, s->probe_first + i, k, t->x, t->y);
        nndl_net_forward(s->net, t->x, k);
        for (int j = 0; j < r->n_probe_layers; j++) {
            int l = r->probe_layers[j], w = s->net->sizes[l];
            memcpy(s->act[j] + (size_t)i * w, s->net->a[l], sizeof(float) * (size_t)k * w);
        }
    }
}

static nndl_status snapshot(nndl_session *s, int epoch, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    if (s->d->rank == 0) st = nndl_runfile_history(&s->paths, epoch, s->net, s->o->compress, err);
    if (s->run.n_probe > 0) { /* collective: every rank writes its rows */
        probe_forward(s);
        nndl_err e2;
        nndl_status st2 = nndl_runfile_activations(s->d->comm, &s->paths, epoch, &s->run, s->net, s->act,
                                                   s->probe_first, s->probe_rows, st == NNDL_OK ? err : &e2);
        if (st == NNDL_OK) st = st2;
    }
    if (st == NNDL_OK && s->d->rank == 0) st = nndl_run_add_snapshot(&s->run, epoch, err);
    return st;
}

/* Rank 0: a checkpoint of where training stands. */
static nndl_status checkpoint(nndl_session *s, nndl_err *err)
{
    s->run.epoch = s->tr.epoch, s->run.step = s->tr.step, s->run.cost_sum = s->tr.cost_sum;
    s->run.sched = s->tr.sched;
    s->run.optim_state = s->tr.sgd.velocity; /* node-shared once the fused step has set up */
    s->last_ckpt_epoch = s->tr.epoch, s->last_ckpt_step = s->tr.step;
    if (s->d->rank != 0) return NNDL_OK;
    return nndl_runfile_checkpoint(&s->paths, &s->run, s->net, s->o->keep, err);
}

static nndl_status write_main(nndl_session *s, nndl_err *err)
{
    s->run.epoch = s->tr.epoch, s->run.step = s->tr.step, s->run.cost_sum = s->tr.cost_sum;
    return s->d->rank == 0 ? nndl_runfile_write_main(&s->paths, &s->run, s->net, err) : NNDL_OK;
}

/* ---- start ---- */

static char *join_args(int argc, char **argv)
{
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 3;
    char *s = calloc(n, 1);
    for (int i = 0; s && i < argc; i++) {
        int q = strpbrk(argv[i], " \t'\"") != NULL;
        strcat(s, i ? " " : ""), strcat(s, q ? "'" : ""), strcat(s, argv[i]), strcat(s, q ? "'" : "");
    }
    return s;
}

/* Resume, step 1: rank 0 reads the manifest; every rank takes the stored configuration. */
static nndl_status resume_config(nndl_session *s, char **ckpt, nndl_err *err)
{
    char *cfg = NULL, path[4400] = "";
    nndl_status st = NNDL_OK;
    nndl_run_paths_of(&s->paths, s->o->resume);
    if (s->d->rank == 0) st = nndl_runfile_open(&s->paths, &cfg, path, sizeof path, err);
    if (st == NNDL_OK && s->d->rank == 0) clear_tmp(s->paths.dir); /* what a kill left half-written */
    if ((st = nndl_dist_agree(s->d, st, err, NULL)) != NNDL_OK) return st;
    *ckpt = strdup(path);
    if ((st = nndl_dist_bcast_str(s->d, &cfg, err)) == NNDL_OK) st = nndl_dist_bcast_str(s->d, ckpt, err);
    if (st == NNDL_OK) st = nndl_options_merge_stored(s->o, cfg, s->o->resume, err);
    free(cfg);
    if (st == NNDL_OK) snprintf(s->o->out, sizeof s->o->out, "%s", s->o->resume);
    return st;
}

/* Resume, step 2: rank 0 loads the checkpoint; every rank gets the parameters and the position. */
static nndl_status resume_state(nndl_session *s, const char *ckpt, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    char *sha_now = NULL;
    if (s->d->rank == 0) {
        free(s->run.command_line), free(s->run.host), free(s->run.start_time), free(s->run.dataset);
        free(s->run.dataset_sha256_json);
        s->run.command_line = s->run.host = s->run.start_time = s->run.dataset = s->run.dataset_sha256_json = NULL;
        st = nndl_runfile_load_checkpoint(ckpt, &s->run, s->net, err);
        if (st == NNDL_OK) st = dataset_sha(&s->ds, &sha_now, err);
        if (st == NNDL_OK && s->run.dataset_sha256_json[0] && strcmp(sha_now, s->run.dataset_sha256_json) != 0)
            st = nndl_fail(err, NNDL_EARG, "--resume %s: the data files in %s are not the ones the run trained on "
                           "(SHA-256 differs); point --data at the run's data", s->o->resume, s->o->data_dir);
        free(sha_now);
        if (s->o->cfg.epochs < s->run.epoch && st == NNDL_OK)
            st = nndl_fail(err, NNDL_EARG, "--epochs %d: the run has already trained %d epochs; --epochs is the total "
                           "(e.g. --epochs %d)", s->o->cfg.epochs, s->run.epoch, s->run.epoch + 10);
    }
    if ((st = nndl_dist_agree(s->d, st, err, NULL)) != NNDL_OK) return st;
    /* every rank decides the same things from this state (e.g. a better epoch -> a test pass) */
    struct { int epoch, best_epoch; long step; double cost_sum, best_val, best_test; } pos = {
        s->run.epoch, s->run.best_epoch, s->run.step, s->run.cost_sum, s->run.best_val, s->run.best_test};
    st = nndl_dist_bcast(s->d, &pos, sizeof pos, err);
    s->run.best_epoch = pos.best_epoch, s->run.best_val = pos.best_val, s->run.best_test = pos.best_test;
    if (s->d->rank == 0) { /* the schedule's state from the checkpoint; its settings from the configuration */
        nndl_schedule *t = &s->tr.sched, *c = &s->run.sched;
        t->eta = c->eta, t->best = c->best, t->since_best = c->since_best, t->since_change = c->since_change;
        t->decays = c->decays, t->stopped = c->stopped;
    }
    if (st == NNDL_OK) st = nndl_dist_bcast(s->d, &s->tr.sched, sizeof s->tr.sched, err);
    if (st == NNDL_OK && s->tr.sgd.velocity)
        st = nndl_dist_bcast(s->d, s->tr.sgd.velocity, sizeof(float) * s->net->n_params, err);
    s->run.sched = s->tr.sched;
    if (st == NNDL_OK) st = nndl_dist_bcast(s->d, s->net->params, sizeof(float) * s->net->n_params, err);
    s->tr.epoch = pos.epoch, s->tr.step = pos.step, s->tr.cost_sum = pos.cost_sum;
    s->last_ckpt_epoch = pos.epoch, s->last_ckpt_step = pos.step;
    s->resumed = 1;
    return st;
}

static nndl_status identity(nndl_session *s, int argc, char **argv, nndl_err *err)
{
    nndl_run *r = &s->run;
    cJSON *c = nndl_options_to_json(s->o);
    r->config_json = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    r->world_size = s->d->size;
    r->status = "running";
    if (s->d->rank != 0) return NNDL_OK;
    char host[256] = "", stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gethostname(host, sizeof host - 1);
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    r->command_line = join_args(argc, argv), r->host = strdup(host), r->start_time = strdup(stamp);
    r->dataset = strdup(s->o->dataset);
    return dataset_sha(&s->ds, &r->dataset_sha256_json, err);
}

nndl_status nndl_session_start(nndl_session *s, nndl_options *o, const nndl_dist *d, int argc, char **argv,
                               nndl_err *err)
{
    memset(s, 0, sizeof *s);
    s->o = o, s->d = d;
    s->run.best_val = -1.0;
    char *ckpt = NULL;
    nndl_status st = NNDL_OK;
    if (o->resume[0]) st = resume_config(s, &ckpt, err);
    if (st == NNDL_OK) st = nndl_options_check(o, err);
    if (st == NNDL_OK) st = nndl_dataset_load(&s->ds, o, d, err);
    o->cfg.step_hook_every = o->checkpoint_every_steps;
    /* --overlap auto: only where the reduction crosses nodes. Within a node the reduction's copies and
     * sums need the same cores as backprop, and measured on 2 cores it gained nothing (0.94x on
     * 784-1024-1024-10, 0.74-0.82x on the batch-10 nets: tools/bench/run); between nodes the network
     * can move data while the cores compute. */
    nndl_config run_cfg = o->cfg;
    if (run_cfg.overlap < 0) run_cfg.overlap = s->ds.share.node_size < d->size ? -1 : 0;
    if (st == NNDL_OK) st = nndl_net_create(&s->net, o->cfg.sizes, o->cfg.n_sizes, o->cfg.act, o->cfg.cost, err);
    if (st == NNDL_OK) st = nndl_trainer_init(&s->tr, s->net, &run_cfg, &s->ds.train, &s->ds.val, d, err);
    if (st == NNDL_OK) {
        s->run.optim_state = s->tr.sgd.velocity, s->run.n_optim = s->tr.sgd.velocity ? s->net->n_params : 0;
        s->run.sched = s->tr.sched;
    }
    if (st == NNDL_OK && d->rank == 0 && !o->resume[0]) st = prepare_out(o, err);
    if ((st = nndl_dist_agree(d, st, err, NULL)) != NNDL_OK) goto out;
    if ((st = nndl_dist_bcast(d, o->out, sizeof o->out, err)) != NNDL_OK) goto out;
    nndl_run_paths_of(&s->paths, o->out);
    st = identity(s, argc, argv, err);
    if (st == NNDL_OK) st = probes_setup(s, err);
    if ((st = nndl_dist_agree(d, st, err, NULL)) != NNDL_OK) goto out;
    if (ckpt && ckpt[0]) { /* a resume: the checkpoint has the parameters */
        st = resume_state(s, ckpt, err);
        if (st == NNDL_OK) st = nndl_dist_agree(d, write_main(s, err), err, NULL);
        goto out;
    }
    if (o->init_from[0]) {
        if (d->rank == 0) st = nndl_runfile_load_model(o->init_from, s->net, err);
        if ((st = nndl_dist_agree(d, st, err, NULL)) == NNDL_OK)
            st = nndl_dist_bcast(d, s->net->params, sizeof(float) * s->net->n_params, err);
    } else {
        nndl_net_init(s->net, o->cfg.init, o->cfg.seed);
    }
    /* the main file first: it creates the manifest with the configuration, so a run killed at any later
     * instant has both (a resume then starts over if no checkpoint exists yet) */
    if (st == NNDL_OK) st = write_main(s, err);
    if (st == NNDL_OK && o->history_every > 0) st = snapshot(s, 0, err); /* the starting point: frame 0 */
    if (st == NNDL_OK && o->history_every > 0) st = write_main(s, err);
    st = nndl_dist_agree(d, st, err, NULL);
out:
    free(ckpt);
    return st;
}

/* ---- epochs ---- */

nndl_status nndl_session_epoch_end(nndl_session *s, const nndl_epoch_metrics *m, nndl_err *err)
{
    nndl_run *r = &s->run;
    const nndl_options *o = s->o;
    double row[NNDL_N_METRICS] = {m->epoch, m->train_cost, m->val_accuracy, m->val_cost, m->learning_rate, m->seconds,
                                  m->samples_per_s, m->eval_seconds, NAN, NAN, NAN, NAN};
    nndl_status st = NNDL_OK;
    int better = m->val_accuracy > r->best_val;
    if (o->cfg.monitor_train) { /* the book's monitor: the whole training set, with the regularisation term */
        st = nndl_trainer_evaluate(&s->tr, s->tr.train, &row[NNDL_M_TRAIN_ACCURACY], &row[NNDL_M_TRAIN_FULL_COST], err);
        row[NNDL_M_TRAIN_FULL_COST] += nndl_sgd_penalty(&s->tr.sgd, s->net);
    }
    if (st == NNDL_OK && (o->cfg.monitor_test || better))
        st = nndl_trainer_evaluate(&s->tr, &s->ds.test, &row[NNDL_M_TEST_ACCURACY], &row[NNDL_M_TEST_COST], err);
    if (st == NNDL_OK && better) { /* the best model so far, and its test accuracy */
        r->best_val = m->val_accuracy, r->best_epoch = m->epoch, r->best_test = row[NNDL_M_TEST_ACCURACY];
        if (s->d->rank == 0) {
            if (!r->best_params && !(r->best_params = malloc(sizeof(float) * s->net->n_params)))
                st = nndl_fail(err, NNDL_ENOMEM, "out of memory for the best parameters");
            else
                memcpy(r->best_params, s->net->params, sizeof(float) * s->net->n_params);
        }
    }
    memcpy(s->last_row, row, sizeof row);
    if (st == NNDL_OK && s->d->rank == 0) st = nndl_run_add_epoch(r, row, err);
    nndl_schedule_update(&s->tr.sched, m->val_accuracy); /* every rank: the same numbers, the same decision */
    int last = m->epoch == o->cfg.epochs || s->tr.sched.stopped;
    if (st == NNDL_OK && o->history_every > 0 && (m->epoch % o->history_every == 0 || last)) st = snapshot(s, m->epoch, err);
    if (st == NNDL_OK && ((o->checkpoint_every > 0 && m->epoch % o->checkpoint_every == 0) || last))
        st = checkpoint(s, err);
    if (st == NNDL_OK) st = write_main(s, err);
    return nndl_dist_agree(s->d, st, err, NULL);
}

nndl_status nndl_session_on_step(void *ctx, nndl_trainer *t, nndl_err *err)
{
    nndl_session *s = ctx;
    (void)t;
    nndl_status st = checkpoint(s, err);
    if (st == NNDL_OK) st = write_main(s, err);
    return nndl_dist_agree(s->d, st, err, NULL);
}

nndl_status nndl_session_finish(nndl_session *s, nndl_status st, nndl_err *err)
{
    if (!s->net || !s->paths.main[0] || !s->run.config_json) return st;
    s->run.status = st == NNDL_OK ? "completed" : st == NNDL_ESTOP ? "stopped" : "failed";
    s->run.exit_status = nndl_exit_status(st);
    nndl_err e2;
    nndl_status st2 = NNDL_OK;
    int keep_going = st == NNDL_OK || st == NNDL_ESTOP; /* a stop is orderly: all ranks are at one step */
    if (keep_going && (s->last_ckpt_epoch != s->tr.epoch || s->last_ckpt_step != s->tr.step))
        st2 = checkpoint(s, st == NNDL_OK ? err : &e2);
    if (st2 == NNDL_OK && s->d->rank == 0 && (st != NNDL_OK || s->tr.epoch > 0 || s->resumed))
        st2 = write_main(s, st == NNDL_OK ? err : &e2); /* a failed run still says so, if it can */
    if (keep_going) {
        nndl_status agreed = nndl_dist_agree(s->d, st2, st == NNDL_OK ? err : &e2, NULL);
        if (agreed != NNDL_OK) {
            if (st == NNDL_ESTOP) *err = e2; /* the checkpoint failed: that is the error to report */
            return agreed;
        }
    }
    return st;
}

void nndl_session_free(nndl_session *s)
{
    for (int k = 0; k < NNDL_MAX_SIZES; k++) free(s->act[k]);
    nndl_trainer_free(&s->tr);
    nndl_net_free(s->net);
    nndl_run_free(&s->run);
    nndl_dataset_free(&s->ds);
}
