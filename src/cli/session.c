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

#include "nndl/eval.h"

/* ---- data ---- */

nndl_status nndl_dataset_load(nndl_dataset *ds, const nndl_options *o, const nndl_dist *d,
                              nndl_err *err)
{
    char hint[9000];
    const char *dir = o->data_dir;
    const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                            "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    snprintf(hint, sizeof hint,
             "the %s files were looked for in %s; fetch them with: tools/fetch-data %s --dir %s "
             "(or point --data / NNDL_DATA at them)",
             nndl_datasets[o->dataset], dir, nndl_datasets[o->dataset], dir);
    for (int i = 0; i < 4; i++) nndl_data_find(ds->paths[i], sizeof ds->paths[i], dir, names[i]);
    nndl_status st = nndl_dist_node_init(d, &ds->share, err);
    if (st != NNDL_OK) return st;
    /* node rank 0 reads; every rank of the node then shares its copy */
    for (int k = 0; k < 2; k++) {
        nndl_images *im = k ? &ds->test_file : &ds->train_file;
        if (ds->share.node_rank == 0)
            st = nndl_images_load(im, ds->paths[2 * k], ds->paths[2 * k + 1], 10, hint, err);
        if ((st = nndl_dist_share_images(&ds->share, im, st, err)) != NNDL_OK) return st;
    }
    int avail = ds->train_file.n - o->val_samples;
    if (avail < 1)
        return nndl_fail(err, NNDL_EARG,
                         "--val-samples %d: the training file has only %d samples; "
                         "leave at least one for training",
                         o->val_samples, ds->train_file.n);
    if (o->train_samples > avail)
        return nndl_fail(err, NNDL_EARG,
                         "--train-samples %d: only %d samples are left for training after "
                         "--val-samples %d (%s has %d); use --train-samples %d or less",
                         o->train_samples, avail, o->val_samples, nndl_datasets[o->dataset],
                         ds->train_file.n, avail);
    int n_train = o->train_samples ? o->train_samples : avail;
    st = nndl_split_train_val(&ds->train, &ds->val, &ds->train_file, n_train, o->val_samples,
                              o->val_random, o->cfg.seed, err);
    if (st == NNDL_OK) st = nndl_split_range(&ds->test, &ds->test_file, 0, ds->test_file.n, err);
    if (st != NNDL_OK) return st;
    const nndl_config *c = &o->cfg;
    int in = ds->train_file.rows * ds->train_file.cols, out = ds->train_file.n_classes;
    char s[1024];
    if (c->n_layers > 0 && nndl_config_outputs(c) != out) {
        nndl_config_layers_str(c, s, sizeof s);
        return nndl_fail(err, NNDL_EARG,
                         "--layers %s: %s has %d classes, so the last layer must be dense:%d", s,
                         nndl_datasets[o->dataset], out, out);
    }
    nndl_options_sizes_str(c, s, sizeof s, ',');
    if (c->n_layers == 0 && (c->sizes[0] != in || c->sizes[c->n_sizes - 1] != out))
        return nndl_fail(err, NNDL_EARG,
                         "--sizes %s: %s has %d inputs (%dx%d pixels) and %d classes, so the first "
                         "size must be %d and the last %d (e.g. --sizes %d,30,%d)",
                         s, nndl_datasets[o->dataset], in, ds->train_file.rows, ds->train_file.cols,
                         out, in, out, in, out);
    return NNDL_OK;
}

void nndl_dataset_free(nndl_dataset *ds)
{
    nndl_split_free(&ds->train);
    nndl_split_free(&ds->val);
    nndl_split_free(&ds->test);
    nndl_images_free(&ds->train_file);
    nndl_images_free(&ds->test_file);
    nndl_dist_node_free(&ds->share); /* collective over the node: every rank frees its dataset */
}

/* {"train-images-idx3-ubyte": "sha256", ...} of the four files (rank 0) */
static nndl_status dataset_sha(const nndl_dataset *ds, char **out, nndl_err *err)
{
    cJSON *j = cJSON_CreateObject();
    for (int i = 0; i < 4; i++) {
        char sha[NNDL_SHA256_HEX], b[4200];
        nndl_status st = nndl_sha256_file(ds->paths[i], sha, err);
        if (st != NNDL_OK) {
            cJSON_Delete(j);
            return st;
        }
        snprintf(b, sizeof b, "%s",
                 strrchr(ds->paths[i], '/') ? strrchr(ds->paths[i], '/') + 1 : ds->paths[i]);
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
        int ours = !strncmp(n, "MANIFEST.json", 13) || !strncmp(n, "ckpt-", 5) ||
                   !strncmp(n, "hist-", 5) || !strncmp(n, "act-", 4) || !strncmp(n, "eval.h5", 7);
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

nndl_status create_net(const nndl_config *c, const nndl_dataset *ds, nndl_net **net, nndl_err *err)
{
    nndl_shape data = {1, ds->train_file.rows, ds->train_file.cols};
    nndl_status st = nndl_config_net(c, data, net, err);
    if (st == NNDL_EARG && c->n_layers > 0) { /* the layers do not fit the data: name the flag */
        char spec[1024], why[sizeof err->msg];
        nndl_config_layers_str(c, spec, sizeof spec);
        snprintf(why, sizeof why, "%s", err->msg);
        st = nndl_fail(err, NNDL_EARG, "--layers %s: %s", spec, why);
    }
    return st;
}

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
            return nndl_fail(
                err, NNDL_EARG,
                "--out: cannot create the default directory runs/: %s; give --out FILE",
                strerror(errno));
        snprintf(o->out, sizeof o->out, "runs/run-%s.h5", stamp);
        for (int k = 2; exists(o->out) && k < 1000; k++)
            snprintf(o->out, sizeof o->out, "runs/run-%s-%d.h5", stamp, k);
    }
    nndl_run_paths p;
    nndl_run_paths_of(&p, o->out);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", o->out);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    nndl_status st = nndl_check_writable_dir(dir, "--out", err);
    if (st != NNDL_OK) return st;
    if ((exists(p.main) || exists(p.dir)) && !o->force)
        return nndl_fail(err, NNDL_EARG,
                         "--out %s: a run is already there; continue it with --resume %s, choose "
                         "another --out, or replace it with --force",
                         o->out, o->out);
    if (o->force) {
        unlink(p.main);
        clear_dir(p.dir);
    }
    if (mkdir(p.dir, 0777) != 0 && errno != EEXIST)
        return nndl_fail(err, NNDL_EARG, "--out: cannot create %s: %s", p.dir, strerror(errno));
    return NNDL_OK;
}

/* ---- snapshots: weights (rank 0) and probe activations (every rank its rows) ---- */

/* A conv net's run keeps the images of the probes whose feature maps it records (nndl-plot
 * featuremaps). */
static nndl_status keep_probe_images(nndl_session *s)
{
    nndl_run *r = &s->run;
    const nndl_images *im = &s->ds.train_file;
    size_t px = (size_t)im->rows * im->cols;
    if (!s->net->has_conv || r->probe_conv <= 0) return NNDL_OK;
    r->image_h = im->rows;
    r->image_w = im->cols;
    if (!(r->probe_images = malloc(px * r->probe_conv))) return NNDL_ENOMEM;
    for (int i = 0; i < r->probe_conv; i++)
        memcpy(r->probe_images + px * i, im->pixels + px * r->probe_index[i], px);
    return NNDL_OK;
}

static nndl_status probes_setup(nndl_session *s, nndl_err *err)
{
    nndl_options *o = s->o;
    nndl_run *r = &s->run;
    int L = s->net->n_layers;
    r->n_probe = o->history_every > 0 ? o->probe : 0;
    r->n_probe_layers = 0;
    if (o->n_probe_layers)
        for (int i = 0; i < o->n_probe_layers; i++)
            r->probe_layers[r->n_probe_layers++] = o->probe_layers[i];
    else
        /* every hidden layer */
        for (int l = 1; l < L; l++) r->probe_layers[r->n_probe_layers++] = l;
    if (r->n_probe_layers == 0) r->n_probe = 0; /* no hidden layer, no layer asked for */
    r->probe_conv = o->probe_conv < r->n_probe ? o->probe_conv : r->n_probe;
    r->probe_index = malloc(sizeof(int) * (r->n_probe ? r->n_probe : 1));
    r->probe_label = malloc((size_t)(r->n_probe ? r->n_probe : 1));
    if (!r->probe_index || !r->probe_label)
        return nndl_fail(err, NNDL_ENOMEM, "out of memory for probes");
    for (int i = 0; i < r->n_probe; i++) {
        r->probe_index[i] = s->ds.val.idx[i];
        r->probe_label[i] = s->ds.train_file.labels[s->ds.val.idx[i]];
    }
    if (keep_probe_images(s) != NNDL_OK)
        return nndl_fail(err, NNDL_ENOMEM, "out of memory for probes");
    nndl_dist_shard(r->n_probe, s->d->size, s->d->rank, &s->probe_first, &s->probe_rows);
    for (int k = 0; k < r->n_probe_layers; k++) {
        size_t n = (size_t)(s->probe_rows ? s->probe_rows : 1) * s->net->sizes[r->probe_layers[k]];
        if (!(s->act[k] = malloc(sizeof(float) * n)))
            return nndl_fail(err, NNDL_ENOMEM, "out of memory for probes");
    }
    return NNDL_OK;
}

static const nndl_train_state *state_of(const nndl_session *s)
{
    static const nndl_train_state none; /* before the trainer exists */
    return s->tr ? nndl_trainer_state(s->tr) : &none;
}

static nndl_status snapshot(nndl_session *s, int epoch, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    const nndl_run *r = &s->run;
    if (s->d->rank == 0) st = nndl_runfile_history(&s->paths, epoch, s->net, s->o->compress, err);
    if (r->n_probe > 0) { /* collective: every rank writes its rows */
        nndl_err e2;
        nndl_status st2 = nndl_eval_activations(s->net, &s->ds.val, s->probe_first, s->probe_rows,
                                                r->probe_layers, r->n_probe_layers, s->act,
                                                st == NNDL_OK ? err : &e2);
        if (st2 == NNDL_OK)
            st2 =
                nndl_runfile_activations(s->d->comm, &s->paths, epoch, r, s->net, s->act,
                                         s->probe_first, s->probe_rows, st == NNDL_OK ? err : &e2);
        if (st == NNDL_OK) st = st2;
    }
    if (st == NNDL_OK && s->d->rank == 0) st = nndl_run_add_snapshot(&s->run, epoch, err);
    return st;
}

/* --monitor speed: every layer's speed of learning now, recorded as epoch's. Collective. */
static nndl_status measure_speed(nndl_session *s, int epoch, nndl_err *err)
{
    if (!(s->o->monitor & NNDL_MONITOR_SPEED)) return NNDL_OK;
    nndl_status st =
        nndl_eval_speed(s->net, &s->ds.train, s->o->speed_samples, s->d, s->speed, err);
    s->speed_epoch = st == NNDL_OK ? epoch : -1;
    if (st == NNDL_OK && s->d->rank == 0)
        st = nndl_run_add_speed(&s->run, epoch, s->speed, s->net->n_layers, err);
    return st;
}

/* Rank 0: a checkpoint of where training stands. */
static nndl_status checkpoint(nndl_session *s, nndl_err *err)
{
    const nndl_train_state *z = state_of(s);
    s->last_ckpt_epoch = z->epoch;
    s->last_ckpt_step = z->step;
    if (s->d->rank != 0) return NNDL_OK;
    return nndl_runfile_checkpoint(&s->paths, &s->run, s->net, z, s->o->keep, err);
}

static nndl_status write_main(nndl_session *s, nndl_err *err)
{
    return s->d->rank == 0 ? nndl_runfile_write_main(&s->paths, &s->run, s->net, state_of(s), err)
                           : NNDL_OK;
}

/* ---- start ---- */

static char *join_args(int argc, char **argv)
{
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 3;
    char *s = calloc(n, 1);
    for (int i = 0; s && i < argc; i++) {
        const char *q = strpbrk(argv[i], " \t'\"") ? "'" : "";
        size_t used = strlen(s);
        snprintf(s + used, n - used, "%s%s%s%s", i ? " " : "", q, argv[i], q);
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
    /* what a kill left half-written */
    if (st == NNDL_OK && s->d->rank == 0) clear_tmp(s->paths.dir);
    if ((st = nndl_dist_agree(s->d, st, err, NULL)) != NNDL_OK) return st;
    *ckpt = strdup(path);
    if ((st = nndl_dist_bcast_str(s->d, &cfg, err)) == NNDL_OK)
        st = nndl_dist_bcast_str(s->d, ckpt, err);
    if (st == NNDL_OK) st = nndl_options_merge_stored(s->o, cfg, s->o->resume, err);
    free(cfg);
    if (st == NNDL_OK) snprintf(s->o->out, sizeof s->o->out, "%s", s->o->resume);
    return st;
}

/* Rank 0: load the checkpoint into the run, the net and *z, and check it belongs to this data. */
static nndl_status load_resumed(nndl_session *s, const char *ckpt, nndl_train_state *z,
                                nndl_err *err)
{
    nndl_run *r = &s->run;
    char *sha_now = NULL;
    free(r->command_line);
    free(r->host);
    free(r->start_time);
    free(r->dataset);
    free(r->dataset_sha256_json);
    r->command_line = r->host = r->start_time = r->dataset = r->dataset_sha256_json = NULL;
    nndl_status st = nndl_runfile_load_checkpoint(ckpt, r, s->net, z, err);
    if (st == NNDL_OK) st = dataset_sha(&s->ds, &sha_now, err);
    if (st == NNDL_OK && r->dataset_sha256_json[0] && strcmp(sha_now, r->dataset_sha256_json) != 0)
        st = nndl_fail(err, NNDL_EARG,
                       "--resume %s: the data files in %s are not the ones the run trained on "
                       "(SHA-256 differs); point --data at the run's data",
                       s->o->resume, s->o->data_dir);
    free(sha_now);
    if (st == NNDL_OK && s->o->cfg.epochs < z->epoch)
        st = nndl_fail(err, NNDL_EARG,
                       "--epochs %d: the run has already trained %d epochs; --epochs is the total "
                       "(e.g. --epochs %d)",
                       s->o->cfg.epochs, z->epoch, z->epoch + 10);
    return st;
}

/* Resume, step 2: rank 0 loads the checkpoint; every rank gets the parameters and the state. */
static nndl_status resume_state(nndl_session *s, const char *ckpt, nndl_train_state *z,
                                nndl_err *err)
{
    nndl_status st = s->d->rank == 0 ? load_resumed(s, ckpt, z, err) : NNDL_OK;
    if ((st = nndl_dist_agree(s->d, st, err, NULL)) != NNDL_OK) return st;
    /* every rank decides the same things from this state (e.g. a better epoch -> a test pass) */
    struct {
        int best_epoch;
        double best_val, best_test;
    } best = {s->run.best_epoch, s->run.best_val, s->run.best_test};
    float *velocity = z->velocity;
    st = nndl_dist_bcast(s->d, &best, sizeof best, err);
    if (st == NNDL_OK) st = nndl_dist_bcast(s->d, z, sizeof *z, err);
    z->velocity = velocity; /* the pointer is this rank's */
    if (st == NNDL_OK && velocity)
        st = nndl_dist_bcast(s->d, velocity, sizeof(float) * z->n_velocity, err);
    if (st == NNDL_OK)
        st = nndl_dist_bcast(s->d, s->net->params, sizeof(float) * s->net->n_params, err);
    s->run.best_epoch = best.best_epoch;
    s->run.best_val = best.best_val;
    s->run.best_test = best.best_test;
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
    r->command_line = join_args(argc, argv);
    r->host = strdup(host);
    r->start_time = strdup(stamp);
    r->dataset = strdup(nndl_datasets[s->o->dataset]);
    return dataset_sha(&s->ds, &r->dataset_sha256_json, err);
}

/* The options, the data, the network, the plan, the run's record. Collective. */
static nndl_status prepare(nndl_session *s, int argc, char **argv, char **ckpt, nndl_err *err)
{
    nndl_options *o = s->o;
    const nndl_dist *d = s->d;
    nndl_status st = o->resume[0] ? resume_config(s, ckpt, err) : NNDL_OK;
    if (st == NNDL_OK) st = nndl_options_check(o, err);
    if (st == NNDL_OK) st = nndl_dataset_load(&s->ds, o, d, err);
    if (st == NNDL_OK && (o->monitor & NNDL_MONITOR_SPEED) && o->speed_samples > s->ds.train.n)
        st = nndl_fail(err, NNDL_EARG,
                       "--speed-samples %d: more than the %d training samples; give at most %d "
                       "(or more --train-samples)",
                       o->speed_samples, s->ds.train.n, s->ds.train.n);
    if (st == NNDL_OK) st = create_net(&o->cfg, &s->ds, &s->net, err);
    if ((st = nndl_dist_agree(d, st, err, NULL)) != NNDL_OK) return st;
    if ((st = nndl_trainer_plan(&o->cfg, s->net, s->ds.train.n, d, &s->plan, err)) != NNDL_OK)
        return st;
    st = identity(s, argc, argv, err);
    if (st == NNDL_OK) st = probes_setup(s, err);
    return nndl_dist_agree(d, st, err, NULL);
}

/* A new run's file: its place chosen and checked by rank 0, told to all. Collective. */
static nndl_status place_run(nndl_session *s, nndl_err *err)
{
    nndl_options *o = s->o;
    nndl_status st = s->d->rank == 0 && !o->resume[0] ? prepare_out(o, err) : NNDL_OK;
    if ((st = nndl_dist_agree(s->d, st, err, NULL)) != NNDL_OK) return st;
    if ((st = nndl_dist_bcast(s->d, o->out, sizeof o->out, err)) != NNDL_OK) return st;
    nndl_run_paths_of(&s->paths, o->out);
    return NNDL_OK;
}

/* The parameters and the state to start from: the checkpoint's, --init-from's, or drawn.
 * Collective. */
static nndl_status parameters(nndl_session *s, const char *ckpt, nndl_train_state *z, nndl_err *err)
{
    const nndl_options *o = s->o;
    nndl_status st = NNDL_OK;
    /* a resume: the checkpoint has them */
    if (ckpt && ckpt[0]) return resume_state(s, ckpt, z, err);
    if (o->init_from[0]) {
        if (s->d->rank == 0) st = nndl_runfile_load_model(o->init_from, s->net, err);
        if ((st = nndl_dist_agree(s->d, st, err, NULL)) == NNDL_OK)
            st = nndl_dist_bcast(s->d, s->net->params, sizeof(float) * s->net->n_params, err);
        return st;
    }
    nndl_net_init(s->net, o->cfg.init, o->cfg.seed);
    return NNDL_OK;
}

nndl_status nndl_session_start(nndl_session *s, nndl_options *o, const nndl_dist *d, int argc,
                               char **argv, const nndl_train_hooks *hooks, nndl_err *err)
{
    memset(s, 0, sizeof *s);
    s->o = o;
    s->d = d;
    s->run.best_val = -1.0;
    s->speed_epoch = -1;
    char *ckpt = NULL;
    nndl_train_state z = {0}, *from = NULL;
    nndl_status st = prepare(s, argc, argv, &ckpt, err);
    /* the checkpoint's velocity goes here, then into the trainer */
    if (st == NNDL_OK && ckpt && ckpt[0]) {
        from = &z;
        z.n_velocity = o->cfg.momentum > 0 ? s->net->n_params : 0;
        if (z.n_velocity && !(z.velocity = calloc(z.n_velocity, sizeof(float))))
            st = nndl_fail(err, NNDL_ENOMEM, "out of memory for the velocity");
    }
    if ((st = nndl_dist_agree(d, st, err, NULL)) == NNDL_OK) st = parameters(s, ckpt, &z, err);
    nndl_trainer_setup ts = {s->net, &o->cfg, &s->plan, &s->ds.train, &s->ds.val, d, from, *hooks};
    ts.hooks.step_every = o->checkpoint_every_steps;
    if ((st = nndl_dist_agree(d, st, err, NULL)) == NNDL_OK)
        st = nndl_trainer_create(&s->tr, &ts, err);
    free(z.velocity);
    if (st == NNDL_OK) st = place_run(s, err);
    s->last_ckpt_epoch = z.epoch;
    s->last_ckpt_step = z.step;
    /* the main file first: it creates the manifest with the configuration, so a run killed at any
     * later instant has both (a resume then starts over if no checkpoint exists yet) */
    if (st == NNDL_OK) st = nndl_dist_agree(d, write_main(s, err), err, NULL);
    if (st == NNDL_OK && !from && (o->history_every > 0 || (o->monitor & NNDL_MONITOR_SPEED))) {
        st = measure_speed(s, 0, err); /* the starting point: epoch 0 */
        if (st == NNDL_OK && o->history_every > 0) st = snapshot(s, 0, err);
        if (st == NNDL_OK) st = write_main(s, err);
        st = nndl_dist_agree(d, st, err, NULL);
    }
    free(ckpt);
    return st;
}

int nndl_session_more(const nndl_session *s)
{
    const nndl_train_state *z = state_of(s);
    return z->epoch < s->o->cfg.epochs && !z->sched.stopped;
}

/* ---- epochs ---- */

/* The book's monitors and the test pass of a better epoch, into row. Collective. */
static nndl_status extra_passes(nndl_session *s, int better, double *row, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    /* the whole training set, with the regularisation term */
    if (s->o->monitor & NNDL_MONITOR_TRAIN) {
        st = nndl_eval_split(s->net, &s->ds.train, s->d, &row[NNDL_M_TRAIN_ACCURACY],
                             &row[NNDL_M_TRAIN_FULL_COST], err);
        row[NNDL_M_TRAIN_FULL_COST] += nndl_trainer_penalty(s->tr);
    }
    if (st == NNDL_OK && ((s->o->monitor & NNDL_MONITOR_TEST) || better))
        st = nndl_eval_split(s->net, &s->ds.test, s->d, &row[NNDL_M_TEST_ACCURACY],
                             &row[NNDL_M_TEST_COST], err);
    return st;
}

nndl_status nndl_session_epoch_end(nndl_session *s, const nndl_epoch_metrics *m, nndl_err *err)
{
    nndl_run *r = &s->run;
    const nndl_options *o = s->o;
    double row[NNDL_N_METRICS] = {m->epoch,
                                  m->train_cost,
                                  m->val_accuracy,
                                  m->val_cost,
                                  m->learning_rate,
                                  m->seconds,
                                  m->samples_per_s,
                                  m->eval_seconds,
                                  NAN,
                                  NAN,
                                  NAN,
                                  NAN};
    int better = m->val_accuracy > r->best_val;
    nndl_status st = extra_passes(s, better, row, err);
    if (st == NNDL_OK && better) { /* the best model so far, and its test accuracy */
        r->best_val = m->val_accuracy;
        r->best_epoch = m->epoch;
        r->best_test = row[NNDL_M_TEST_ACCURACY];
        if (s->d->rank == 0 && !r->best_params &&
            !(r->best_params = malloc(sizeof(float) * s->net->n_params)))
            st = nndl_fail(err, NNDL_ENOMEM, "out of memory for the best parameters");
        if (st == NNDL_OK && s->d->rank == 0)
            memcpy(r->best_params, s->net->params, sizeof(float) * s->net->n_params);
    }
    if (st == NNDL_OK) st = measure_speed(s, m->epoch, err);
    memcpy(s->last_row, row, sizeof row);
    if (st == NNDL_OK && s->d->rank == 0) st = nndl_run_add_epoch(r, row, err);
    int last = m->epoch == o->cfg.epochs || state_of(s)->sched.stopped;
    if (st == NNDL_OK && o->history_every > 0 && (m->epoch % o->history_every == 0 || last))
        st = snapshot(s, m->epoch, err);
    if (st == NNDL_OK && ((o->checkpoint_every > 0 && m->epoch % o->checkpoint_every == 0) || last))
        st = checkpoint(s, err);
    if (st == NNDL_OK) st = write_main(s, err);
    return nndl_dist_agree(s->d, st, err, NULL);
}

nndl_status nndl_session_on_step(nndl_session *s, nndl_err *err)
{
    nndl_status st = checkpoint(s, err);
    if (st == NNDL_OK) st = write_main(s, err);
    return nndl_dist_agree(s->d, st, err, NULL);
}

nndl_status nndl_session_finish(nndl_session *s, nndl_status st, nndl_err *err)
{
    if (!s->net || !s->tr || !s->paths.main[0] || !s->run.config_json) return st;
    const nndl_train_state *z = state_of(s);
    s->run.status = st == NNDL_OK ? "completed" : st == NNDL_ESTOP ? "stopped" : "failed";
    s->run.exit_status = nndl_exit_status(st);
    nndl_err e2;
    nndl_status st2 = NNDL_OK;
    /* a stop is orderly: all ranks are at one step */
    int keep_going = st == NNDL_OK || st == NNDL_ESTOP;
    if (keep_going && (s->last_ckpt_epoch != z->epoch || s->last_ckpt_step != z->step))
        st2 = checkpoint(s, st == NNDL_OK ? err : &e2);
    if (st2 == NNDL_OK && s->d->rank == 0 && (st != NNDL_OK || z->epoch > 0 || s->resumed))
        st2 = write_main(s, st == NNDL_OK ? err : &e2); /* a failed run still says so, if it can */
    if (keep_going) {
        nndl_status agreed = nndl_dist_agree(s->d, st2, st == NNDL_OK ? err : &e2, NULL);
        if (agreed != NNDL_OK) {
            /* the checkpoint failed: that is the error to report */
            if (st == NNDL_ESTOP) *err = e2;
            return agreed;
        }
    }
    return st;
}

void nndl_session_free(nndl_session *s)
{
    for (int k = 0; k < NNDL_MAX_SIZES; k++) free(s->act[k]);
    nndl_trainer_free(s->tr);
    nndl_net_free(s->net);
    nndl_run_free(&s->run);
    nndl_dataset_free(&s->ds);
}
