/* ckpt.c: the manifest and the checkpoints of a run (see nndl/runfile.h and docs/runfile.md). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runfile_int.h"

const char *const nndl_metric_names[NNDL_N_METRICS] = {
    "epoch",          "train_cost",      "val_accuracy",  "val_cost",
    "learning_rate",  "seconds",         "samples_per_s", "eval_seconds",
    "train_accuracy", "train_full_cost", "test_accuracy", "test_cost"};

/* ---- the run record in memory ---- */

void nndl_run_paths_of(nndl_run_paths *p, const char *main)
{
    snprintf(p->main, sizeof p->main, "%s", main);
    snprintf(p->dir, sizeof p->dir, "%s.d", main);
}

void nndl_run_free(nndl_run *r)
{
    char *strs[] = {r->config_json, r->command_line, r->host,
                    r->start_time,  r->dataset,      r->dataset_sha256_json};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) free(strs[i]);
    for (int i = 0; i < NNDL_N_METRICS; i++) free(r->metrics[i]);
    void *arrays[] = {r->snap_epoch,   r->probe_index, r->probe_label, r->best_params,
                      r->probe_images, r->speed_epoch, r->speed};
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) free(arrays[i]);
    memset(r, 0, sizeof *r);
}

nndl_status nndl_run_add_epoch(nndl_run *r, const double *m, nndl_err *err)
{
    if (r->n_epochs == r->cap_epochs) {
        int cap = r->cap_epochs ? 2 * r->cap_epochs : 64;
        for (int i = 0; i < NNDL_N_METRICS; i++) {
            double *p = realloc(r->metrics[i], sizeof *p * cap);
            if (!p) return nndl_fail(err, NNDL_ENOMEM, "out of memory for metrics");
            r->metrics[i] = p;
        }
        r->cap_epochs = cap;
    }
    for (int i = 0; i < NNDL_N_METRICS; i++) r->metrics[i][r->n_epochs] = m[i];
    r->n_epochs++;
    return NNDL_OK;
}

nndl_status nndl_run_add_speed(nndl_run *r, int epoch, const double *v, int layers, nndl_err *err)
{
    if (r->n_speed == r->cap_speed) {
        int cap = r->cap_speed ? 2 * r->cap_speed : 64;
        int *e = realloc(r->speed_epoch, sizeof *e * cap);
        if (e) r->speed_epoch = e;
        double *p = e ? realloc(r->speed, sizeof *p * cap * layers) : NULL;
        if (!p) return nndl_fail(err, NNDL_ENOMEM, "out of memory for the speed of learning");
        r->speed = p;
        r->cap_speed = cap;
    }
    r->speed_layers = layers;
    r->speed_epoch[r->n_speed] = epoch;
    memcpy(r->speed + (size_t)r->n_speed * layers, v, sizeof *v * layers);
    r->n_speed++;
    return NNDL_OK;
}

nndl_status nndl_run_add_snapshot(nndl_run *r, int epoch, nndl_err *err)
{
    if (r->n_snaps == r->cap_snaps) {
        int cap = r->cap_snaps ? 2 * r->cap_snaps : 64,
            *p = realloc(r->snap_epoch, sizeof *p * cap);
        if (!p) return nndl_fail(err, NNDL_ENOMEM, "out of memory for snapshots");
        r->snap_epoch = p;
        r->cap_snaps = cap;
    }
    r->snap_epoch[r->n_snaps++] = epoch;
    return NNDL_OK;
}

/* ---- manifest ---- */

nndl_status manifest_load(const nndl_run_paths *p, int create, cJSON **out, nndl_err *err)
{
    char path[4300], *text;
    snprintf(path, sizeof path, "%s/MANIFEST.json", p->dir);
    *out = NULL;
    nndl_status st = nndl_read_file(path, 64u << 20, &text, NULL, err);
    if (st != NNDL_OK && create && access(path, F_OK) != 0) {
        *out = cJSON_CreateObject();
        cJSON_AddNumberToObject(*out, "nndl_format_version", NNDL_FORMAT_VERSION);
        cJSON_AddItemToObject(*out, "files", cJSON_CreateObject());
        cJSON_AddItemToObject(*out, "checkpoints", cJSON_CreateArray());
        return *out ? NNDL_OK : nndl_fail(err, NNDL_ENOMEM, "out of memory");
    }
    if (st != NNDL_OK)
        return nndl_fail(err, NNDL_EARG,
                         "%s is not an nndl run file: %s has no readable MANIFEST.json (%s)",
                         p->main, p->dir, strerror(errno));
    *out = cJSON_Parse(text);
    free(text);
    cJSON *v = *out ? cJSON_GetObjectItem(*out, "nndl_format_version") : NULL;
    if (!*out || !cJSON_IsNumber(v) || !cJSON_IsObject(cJSON_GetObjectItem(*out, "files")) ||
        !cJSON_IsArray(cJSON_GetObjectItem(*out, "checkpoints"))) {
        cJSON_Delete(*out);
        *out = NULL;
        return nndl_fail(err, NNDL_EFORMAT, "%s: damaged manifest %s (not the JSON nndl writes)",
                         p->main, path);
    }
    /* NaN-proof, and no int overflow */
    if (!(v->valuedouble >= 1 && v->valuedouble <= NNDL_FORMAT_VERSION)) {
        double ver = v->valuedouble;
        cJSON_Delete(*out);
        *out = NULL;
        if (ver > NNDL_FORMAT_VERSION)
            return nndl_fail(
                err, NNDL_EFORMAT,
                "%s: written in run-file format %.0f by a newer nndl; this nndl reads up "
                "to format %d: upgrade nndl",
                p->main, ver, NNDL_FORMAT_VERSION);
        return nndl_fail(err, NNDL_EFORMAT, "%s: damaged manifest %s (format version %g)", p->main,
                         path, ver);
    }
    return NNDL_OK;
}

nndl_status manifest_save(const nndl_run_paths *p, cJSON *m, nndl_err *err)
{
    char path[4300], *text = cJSON_Print(m);
    if (!text) return nndl_fail(err, NNDL_ENOMEM, "out of memory for the manifest");
    snprintf(path, sizeof path, "%s/MANIFEST.json", p->dir);
    nndl_status st = nndl_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return st;
}

void manifest_set_config(cJSON *m, const char *config_json)
{
    if (!config_json || cJSON_GetObjectItem(m, "config")) return;
    cJSON *c = cJSON_Parse(config_json);
    if (c) cJSON_AddItemToObject(m, "config", c);
}

nndl_status manifest_add_file(const nndl_run_paths *p, const char *config_json, const char *name,
                              nndl_err *err)
{
    char path[4500], sha[NNDL_SHA256_HEX];
    snprintf(path, sizeof path, "%s/%s", p->dir, name);
    nndl_status st = nndl_sha256_file(path, sha, err);
    cJSON *m = NULL;
    if (st == NNDL_OK) st = manifest_load(p, 1, &m, err);
    if (st != NNDL_OK) return st;
    manifest_set_config(m, config_json);
    cJSON *files = cJSON_GetObjectItem(m, "files");
    cJSON_DeleteItemFromObject(files, name);
    cJSON_AddStringToObject(files, name, sha);
    st = manifest_save(p, m, err);
    cJSON_Delete(m);
    return st;
}

nndl_status manifest_verify(const nndl_run_paths *p, cJSON *m, const char *name, nndl_err *err)
{
    char path[4500], sha[NNDL_SHA256_HEX];
    /* names nndl writes are plain file names in the run's directory: nothing else is read through
     * it */
    if (!name[0] || name[0] == '.' || strchr(name, '/') || strlen(name) > 255)
        return nndl_fail(err, NNDL_EFORMAT,
                         "%s: the manifest names '%.60s', not a file of the run's directory",
                         p->main, name);
    snprintf(path, sizeof path, "%s/%s", p->dir, name);
    cJSON *want = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "files"), name);
    if (!cJSON_IsString(want))
        return nndl_fail(err, NNDL_EFORMAT, "%s: not listed in the run's manifest", path);
    nndl_status st = nndl_sha256_file(path, sha, err);
    if (st != NNDL_OK) return st;
    if (strcmp(sha, want->valuestring) != 0)
        return nndl_fail(err, NNDL_EFORMAT,
                         "%s: SHA-256 %.12s..., the manifest says %.12s...: the file is damaged",
                         path, sha, want->valuestring);
    return NNDL_OK;
}

nndl_status manifest_verify_main(const nndl_run_paths *p, nndl_err *err)
{
    cJSON *m;
    char sha[NNDL_SHA256_HEX];
    nndl_status st = manifest_load(p, 0, &m, err);
    if (st != NNDL_OK) return st;
    cJSON *want = cJSON_GetObjectItem(m, "main_sha256");
    st = nndl_sha256_file(p->main, sha, err);
    if (st == NNDL_OK && (!cJSON_IsString(want) || strcmp(sha, want->valuestring) != 0))
        st = nndl_fail(
            err, NNDL_EFORMAT,
            "%s changed since nndl wrote it (SHA-256 differs from the manifest's): "
            "damaged or edited? nndl-train --resume %s rewrites it from the last checkpoint",
            p->main, p->main);
    cJSON_Delete(m);
    return st;
}

/* ---- layers ---- */

int layer_dims(const nndl_layer *L, hsize_t *dims)
{
    if (L->kind != NNDL_LAYER_CONV) {
        dims[0] = (hsize_t)L->n_out;
        dims[1] = (hsize_t)L->n_in;
        return 2;
    }
    hsize_t d[4] = {(hsize_t)L->n_out, (hsize_t)L->c, (hsize_t)L->k, (hsize_t)L->k};
    memcpy(dims, d, sizeof d);
    return 4;
}

int probe_rows_of(const nndl_run *r, const nndl_net *net, int l)
{
    int conv = net->layer[l - 1].kind == NNDL_LAYER_CONV;
    return conv && r->probe_conv < r->n_probe ? r->probe_conv : r->n_probe;
}

int probe_dims(const nndl_net *net, int l, hsize_t *dims)
{
    const nndl_layer *L = &net->layer[l - 1];
    if (L->kind != NNDL_LAYER_CONV) {
        dims[0] = (hsize_t)net->sizes[l];
        return 1;
    }
    dims[0] = (hsize_t)L->n_out;
    dims[1] = (hsize_t)(L->ho / L->pool);
    dims[2] = (hsize_t)(L->wo / L->pool);
    return 3;
}

/* A layer group's attributes: kind, activation; a conv layer's kernel and pool. */
static herr_t layer_attrs(hid_t g, const nndl_net *net, int l)
{
    const nndl_layer *L = &net->layer[l];
    herr_t rc = h5u_attr_str(g, "kind", L->kind == NNDL_LAYER_CONV ? "conv" : "dense");
    if (rc >= 0) rc = h5u_attr_str(g, "activation", nndl_act_name(net->act[l]));
    if (rc >= 0 && L->kind == NNDL_LAYER_CONV) rc = h5u_attr_int(g, "kernel", L->k);
    if (rc >= 0 && L->kind == NNDL_LAYER_CONV) rc = h5u_attr_int(g, "pool", L->pool);
    return rc;
}

herr_t write_layers(hid_t f, const char *group, const nndl_net *net, const float *buf, int gzip)
{
    for (int l = 0; l < net->n_layers; l++) {
        char name[128];
        const nndl_layer *L = &net->layer[l];
        const float *w = buf + (L->w - net->params), *b = buf + (L->b - net->params);
        snprintf(name, sizeof name, "%s/layer_%d", group, l + 1);
        hid_t g = h5u_group(f, name);
        if (g < 0) return -1;
        hsize_t dw[4], db[1] = {(hsize_t)L->n_out};
        herr_t rc = h5u_write(g, "weights", H5T_NATIVE_FLOAT, layer_dims(L, dw), dw, w, gzip);
        if (rc >= 0) rc = h5u_write(g, "biases", H5T_NATIVE_FLOAT, 1, db, b, gzip);
        if (rc >= 0) rc = layer_attrs(g, net, l);
        H5Gclose(g);
        if (rc < 0) return rc;
    }
    return 0;
}

herr_t write_best(hid_t f, const nndl_run *r, const nndl_net *net)
{
    if (!r->best_params) return 0;
    herr_t rc = write_layers(f, "best", net, r->best_params, 0);
    hid_t g = rc < 0 ? -1 : H5Gopen2(f, "best", H5P_DEFAULT);
    if (g < 0) return -1;
    rc = h5u_attr_int(g, "epoch", r->best_epoch);
    if (rc >= 0) rc = h5u_attr_double(g, "val_accuracy", r->best_val);
    if (rc >= 0) rc = h5u_attr_double(g, "test_accuracy", r->best_test);
    H5Gclose(g);
    return rc;
}

herr_t write_metrics(hid_t f, const nndl_run *r)
{
    hid_t g = h5u_group(f, "metrics");
    herr_t rc = g < 0 ? -1 : 0;
    for (int i = 0; rc >= 0 && i < NNDL_N_METRICS; i++) {
        hsize_t n = (hsize_t)r->n_epochs;
        rc = h5u_write(g, nndl_metric_names[i], H5T_NATIVE_DOUBLE, 1, &n, r->metrics[i], 0);
    }
    if (g >= 0) H5Gclose(g);
    return rc;
}

/* /speed/epoch [S] int32 and /speed/layer_K [S] float64, when the run measures them */
herr_t write_speed(hid_t f, const nndl_run *r)
{
    if (r->n_speed == 0) return 0;
    hid_t g = h5u_group(f, "speed");
    hsize_t n = (hsize_t)r->n_speed;
    herr_t rc = g < 0 ? -1 : h5u_write(g, "epoch", H5T_NATIVE_INT, 1, &n, r->speed_epoch, 0);
    double *col = rc < 0 ? NULL : malloc(sizeof *col * n);
    if (!col) rc = -1;
    for (int l = 0; rc >= 0 && l < r->speed_layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "layer_%d", l + 1);
        for (hsize_t k = 0; k < n; k++) col[k] = r->speed[k * r->speed_layers + l];
        rc = h5u_write(g, name, H5T_NATIVE_DOUBLE, 1, &n, col, 0);
    }
    if (rc >= 0)
        rc = h5u_attr_str(g, "definition",
                          "||(1/N) sum over the first N training samples of dC/db|| per weight "
                          "layer (the book's chapter 5), at the start (epoch 0) and after each "
                          "epoch");
    free(col);
    if (g >= 0) H5Gclose(g);
    return rc;
}

/* The speed series of a checkpoint, if it has one (layers: the net's weight layers). */
static nndl_status read_speed(hid_t f, const char *path, nndl_run *r, int layers, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    hsize_t dims[8];
    if (H5Lexists(f, "speed", H5P_DEFAULT) <= 0) return NNDL_OK;
    H5TRY(h5u_shape(f, "speed/epoch", dims) == 1 ? 0 : -1, "%s: no /speed/epoch", path);
    int n = (int)dims[0], *ep = malloc(sizeof *ep * (n ? n : 1));
    double *col = malloc(sizeof *col * (size_t)(n ? n : 1) * layers), v[NNDL_MAX_SIZES];
    if (!ep || !col) st = nndl_fail(err, NNDL_ENOMEM, "out of memory for the speed of learning");
    if (st == NNDL_OK && h5u_read(f, "speed/epoch", H5T_NATIVE_INT, 1, dims, ep) < 0)
        st = nndl_fail(err, NNDL_EFORMAT, "%s: /speed/epoch cannot be read", path);
    for (int l = 0; st == NNDL_OK && l < layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "speed/layer_%d", l + 1);
        if (h5u_read(f, name, H5T_NATIVE_DOUBLE, 1, dims, col + (size_t)l * n) < 0)
            st = nndl_fail(err, NNDL_EFORMAT, "%s: /%s cannot be read", path, name);
    }
    for (int k = 0; st == NNDL_OK && k < n; k++) {
        for (int l = 0; l < layers; l++) v[l] = col[(size_t)l * n + k];
        st = nndl_run_add_speed(r, ep[k], v, layers, err);
    }
    free(ep);
    free(col);
out:
    return st;
}

herr_t read_layers(hid_t f, const char *group, const nndl_net *net, float *buf)
{
    for (int l = 0; l < net->n_layers; l++) {
        char name[160];
        const nndl_layer *L = &net->layer[l];
        hsize_t dw[4], db[1] = {(hsize_t)L->n_out};
        snprintf(name, sizeof name, "%s/layer_%d/weights", group, l + 1);
        herr_t rc =
            h5u_read(f, name, H5T_NATIVE_FLOAT, layer_dims(L, dw), dw, buf + (L->w - net->params));
        if (rc < 0) return rc;
        snprintf(name, sizeof name, "%s/layer_%d/biases", group, l + 1);
        if ((rc = h5u_read(f, name, H5T_NATIVE_FLOAT, 1, db, buf + (L->b - net->params))) < 0)
            return rc;
    }
    return 0;
}

/* ---- the training state: written and read here, whole ---- */

/* Attributes epoch, step, cost_sum, skipped, eta and schedule_*, and /optim/state (the velocity).
 */
static herr_t write_state(hid_t f, const nndl_train_state *s)
{
    const nndl_schedule_state *sc = &s->sched;
    const char *ints[] = {"epoch",
                          "step",
                          "skipped",
                          "schedule_since_best",
                          "schedule_since_change",
                          "schedule_decays",
                          "schedule_stopped"};
    long long iv[] = {s->epoch,         s->step,    s->skipped, sc->since_best,
                      sc->since_change, sc->decays, sc->stopped};
    herr_t rc = 0;
    for (int i = 0; i < 7 && rc >= 0; i++) rc = h5u_attr_int(f, ints[i], iv[i]);
    if (rc >= 0) rc = h5u_attr_double(f, "cost_sum", s->cost_sum);
    if (rc >= 0) rc = h5u_attr_double(f, "eta", sc->eta);
    if (rc >= 0) rc = h5u_attr_double(f, "schedule_best", sc->best);
    if (rc < 0 || !s->velocity) return rc;
    hid_t g = h5u_group(f, "optim");
    hsize_t n = s->n_velocity;
    rc = g < 0 ? -1 : h5u_write(g, "state", H5T_NATIVE_FLOAT, 1, &n, s->velocity, 0);
    if (g >= 0) H5Gclose(g);
    return rc;
}

/* The same, back into *s (s->velocity: the caller's buffer of s->n_velocity floats, or NULL). */
static herr_t read_state(hid_t f, nndl_train_state *s)
{
    nndl_schedule_state *sc = &s->sched;
    const char *ints[] = {"epoch",
                          "step",
                          "schedule_since_best",
                          "schedule_since_change",
                          "schedule_decays",
                          "schedule_stopped"};
    long long iv[6];
    herr_t rc = 0;
    for (int i = 0; i < 6 && rc >= 0; i++) rc = h5u_get_attr_int(f, ints[i], &iv[i]);
    if (rc < 0) return rc;
    s->epoch = (int)iv[0];
    s->step = (long)iv[1];
    sc->since_best = (int)iv[2];
    sc->since_change = (int)iv[3];
    sc->decays = (int)iv[4];
    sc->stopped = (int)iv[5];
    /* since format 1's later files: older checkpoints count no skipped batch */
    long long skipped = 0;
    if (H5Aexists(f, "skipped") > 0 && h5u_get_attr_int(f, "skipped", &skipped) < 0) return -1;
    s->skipped = (long)skipped;
    if (h5u_get_attr_double(f, "cost_sum", &s->cost_sum) < 0 ||
        h5u_get_attr_double(f, "eta", &sc->eta) < 0 ||
        h5u_get_attr_double(f, "schedule_best", &sc->best) < 0)
        return -1;
    hsize_t n = s->n_velocity;
    return s->velocity ? h5u_read(f, "optim/state", H5T_NATIVE_FLOAT, 1, &n, s->velocity) : 0;
}

/* ---- checkpoints ---- */

static herr_t write_identity(hid_t f, const nndl_run *r)
{
    herr_t rc = h5u_attr_int(f, "nndl_format_version", NNDL_FORMAT_VERSION);
    const char *keys[] = {"config",     "command_line", "host",
                          "start_time", "dataset",      "dataset_sha256"};
    const char *vals[] = {r->config_json, r->command_line, r->host,
                          r->start_time,  r->dataset,      r->dataset_sha256_json};
    for (int i = 0; i < 6 && rc >= 0; i++) rc = h5u_attr_str(f, keys[i], vals[i] ? vals[i] : "");
    if (rc >= 0) rc = h5u_attr_int(f, "mpi_world_size", r->world_size);
    return rc;
}

herr_t write_probes(hid_t g, const nndl_run *r, const char *const names[4])
{
    hsize_t ns = (hsize_t)r->n_snaps, np = (hsize_t)r->n_probe, nl = (hsize_t)r->n_probe_layers;
    herr_t rc = g < 0 ? -1 : h5u_write(g, names[0], H5T_NATIVE_INT, 1, &ns, r->snap_epoch, 0);
    if (rc >= 0) rc = h5u_write(g, names[1], H5T_NATIVE_INT, 1, &np, r->probe_index, 0);
    if (rc >= 0) rc = h5u_write(g, names[2], H5T_NATIVE_UINT8, 1, &np, r->probe_label, 0);
    if (rc >= 0) rc = h5u_write(g, names[3], H5T_NATIVE_INT, 1, &nl, r->probe_layers, 0);
    return rc;
}

/* /snapshots: the snapshot epochs and the probes */
static herr_t write_snapshots(hid_t f, const nndl_run *r)
{
    static const char *const names[4] = {"epoch", "probe_indices", "probe_labels", "probe_layers"};
    hid_t g = h5u_group(f, "snapshots");
    herr_t rc = write_probes(g, r, names);
    if (g >= 0) H5Gclose(g);
    return rc;
}

/* Record a new checkpoint in the manifest, then drop the oldest beyond keep (a crash in between
 * leaves a harmless orphan). */
static nndl_status keep_newest(const nndl_run_paths *p, const nndl_run *r, const char *name,
                               int keep, nndl_err *err)
{
    nndl_status st = manifest_add_file(p, r->config_json, name, err);
    cJSON *m;
    if (st != NNDL_OK || (st = manifest_load(p, 0, &m, err)) != NNDL_OK) return st;
    cJSON *list = cJSON_GetObjectItem(m, "checkpoints"), *files = cJSON_GetObjectItem(m, "files");
    cJSON_AddItemToArray(list, cJSON_CreateString(name));
    char drop[64][64];
    int n_drop = 0;
    while (cJSON_GetArraySize(list) > (keep > 0 ? keep : 1) && n_drop < 64) {
        cJSON *old = cJSON_DetachItemFromArray(list, 0);
        snprintf(drop[n_drop++], 64, "%s", old->valuestring);
        if (strcmp(old->valuestring, name) != 0)
            cJSON_DeleteItemFromObject(files, old->valuestring);
        cJSON_Delete(old);
    }
    st = manifest_save(p, m, err);
    cJSON_Delete(m);
    for (int i = 0; st == NNDL_OK && i < n_drop; i++) {
        char path[4400];
        if (strcmp(drop[i], name) == 0) continue;
        snprintf(path, sizeof path, "%s/%s", p->dir, drop[i]);
        unlink(path);
    }
    return st;
}

nndl_status nndl_runfile_checkpoint(const nndl_run_paths *p, const nndl_run *r, const nndl_net *net,
                                    const nndl_train_state *state, int keep, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    char name[64], path[4400], tmp[4500];
    snprintf(name, sizeof name, "ckpt-%06d-%08ld.h5", state->epoch, state->step);
    snprintf(path, sizeof path, "%s/%s", p->dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f = h5u_create(tmp), g = -1;
    H5TRY(f, "%s: cannot create the checkpoint: %s", tmp, errno ? strerror(errno) : "HDF5 error");
    H5TRY(write_identity(f, r), "%s: writing attributes failed", tmp);
    H5TRY(h5u_attr_str(f, "kind", "checkpoint"), "%s: attribute", tmp);
    H5TRY(h5u_attr_str(
              f, "rng",
              "Philox4x32-10, counter-based: every draw is a function of (seed, stream, epoch, "
              "index), so (epoch, step) is the whole generator state"),
          "%s: attribute", tmp);
    H5TRY(write_state(f, state), "%s: writing the training state failed", tmp);
    H5TRY(write_layers(f, "model", net, net->params, 0), "%s: writing the parameters failed", tmp);
    H5TRY(write_best(f, r, net), "%s: writing the best parameters failed", tmp);
    H5TRY(write_metrics(f, r), "%s: /metrics", tmp);
    H5TRY(write_snapshots(f, r), "%s: /snapshots", tmp);
    H5TRY(write_speed(f, r), "%s: /speed", tmp);
out:
    if (g >= 0) H5Gclose(g);
    st = h5u_finish(f, tmp, path, st, err);
    return st == NNDL_OK ? keep_newest(p, r, name, keep, err) : st;
}

nndl_status nndl_runfile_open(const nndl_run_paths *p, char **config_json, char *ckpt, size_t cap,
                              nndl_err *err)
{
    cJSON *m;
    *config_json = NULL;
    ckpt[0] = 0;
    nndl_status st = manifest_load(p, 0, &m, err);
    if (st != NNDL_OK) return st;
    cJSON *c = cJSON_GetObjectItem(m, "config");
    if (!cJSON_IsObject(c)) {
        cJSON_Delete(m);
        return nndl_fail(err, NNDL_EFORMAT, "%s: the manifest has no configuration", p->main);
    }
    *config_json = cJSON_PrintUnformatted(c);
    cJSON *list = cJSON_GetObjectItem(m, "checkpoints");
    nndl_err why = {0};
    for (int i = cJSON_GetArraySize(list) - 1; i >= 0; i--) {
        cJSON *it = cJSON_GetArrayItem(list, i);
        if (!cJSON_IsString(it)) continue;
        if (manifest_verify(p, m, it->valuestring, &why) == NNDL_OK) {
            snprintf(ckpt, cap, "%s/%s", p->dir, it->valuestring);
            break;
        }
    }
    if (!ckpt[0] && cJSON_GetArraySize(list) > 0)
        st = nndl_fail(err, NNDL_EFORMAT, "%s: no intact checkpoint: %s", p->main, why.msg);
    cJSON_Delete(m);
    return st;
}

static char *dup_attr(hid_t f, const char *name)
{
    char *s = NULL;
    return h5u_get_attr_str(f, name, &s) < 0 ? strdup("") : s;
}

/* /best: the best epoch's parameters and attributes, if the run has one yet */
static herr_t read_best(hid_t f, nndl_run *r, const nndl_net *net)
{
    if (H5Lexists(f, "best", H5P_DEFAULT) <= 0) return 0;
    long long v = 0;
    if (!(r->best_params = malloc(sizeof(float) * net->n_params))) return -1;
    hid_t g =
        read_layers(f, "best", net, r->best_params) < 0 ? -1 : H5Gopen2(f, "best", H5P_DEFAULT);
    herr_t rc = g < 0 ? -1 : h5u_get_attr_int(g, "epoch", &v);
    r->best_epoch = (int)v;
    if (rc >= 0) rc = h5u_get_attr_double(g, "val_accuracy", &r->best_val);
    if (rc >= 0) rc = h5u_get_attr_double(g, "test_accuracy", &r->best_test);
    if (g >= 0) H5Gclose(g);
    return rc;
}

/* /metrics/NAME and /snapshots/epoch, appended to r */
static nndl_status read_series(hid_t f, const char *path, nndl_run *r, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    hsize_t dims[8];
    H5TRY(h5u_shape(f, "metrics/epoch", dims) == 1 ? 0 : -1, "%s: no /metrics/epoch", path);
    for (hsize_t e = 0; e < dims[0] && st == NNDL_OK; e++) {
        double m[NNDL_N_METRICS];
        for (int i = 0; i < NNDL_N_METRICS; i++) m[i] = NAN;
        st = nndl_run_add_epoch(r, m, err);
    }
    if (st != NNDL_OK) goto out;
    for (int i = 0; i < NNDL_N_METRICS; i++) {
        char name[64];
        snprintf(name, sizeof name, "metrics/%s", nndl_metric_names[i]);
        H5TRY(h5u_read(f, name, H5T_NATIVE_DOUBLE, 1, dims, r->metrics[i]), "%s: /%s", path, name);
    }
    H5TRY(h5u_shape(f, "snapshots/epoch", dims) == 1 ? 0 : -1, "%s: no /snapshots/epoch", path);
    for (hsize_t s = 0; s < dims[0] && st == NNDL_OK; s++) st = nndl_run_add_snapshot(r, 0, err);
    if (st != NNDL_OK) goto out;
    H5TRY(h5u_read(f, "snapshots/epoch", H5T_NATIVE_INT, 1, dims, r->snap_epoch), "%s: snapshots",
          path);
out:
    return st;
}

static nndl_status load_checkpoint(const char *path, nndl_run *r, nndl_net *net,
                                   nndl_train_state *state, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    hid_t f = h5u_open_ro(path);
    herr_t rc;
    H5TRY(f, "%s: cannot open the checkpoint", path);
    H5TRY(read_state(f, state),
          "%s: the training state (epoch, step, schedule, velocity) cannot be read", path);
    r->command_line = dup_attr(f, "command_line");
    r->host = dup_attr(f, "host");
    r->start_time = dup_attr(f, "start_time");
    r->dataset = dup_attr(f, "dataset");
    r->dataset_sha256_json = dup_attr(f, "dataset_sha256");
    if ((rc = read_layers(f, "model", net, net->params)) < 0) {
        st = nndl_fail(err, rc == -2 ? NNDL_EARG : NNDL_EHDF5, "%s: %s", path,
                       rc == -2 ? "its layer shapes differ from the configuration"
                                : "cannot read /model");
        goto out;
    }
    H5TRY(read_best(f, r, net), "%s: cannot read /best", path);
    st = read_series(f, path, r, err);
    if (st == NNDL_OK) st = read_speed(f, path, r, net->n_layers, err);
out:
    if (f >= 0) H5Fclose(f);
    return st;
}

typedef struct {
    const char *path;
    nndl_run *r;
    nndl_net *net;
    nndl_train_state *state;
} load_arg;

/* In the isolated child: the whole load, on the child's copies of run, net and state (discarded).
 */
static nndl_status probe_checkpoint(void *arg, void *out, size_t cap, nndl_err *err)
{
    load_arg *a = arg;
    (void)out;
    (void)cap;
    return load_checkpoint(a->path, a->r, a->net, a->state, err);
}

nndl_status nndl_runfile_load_checkpoint(const char *path, nndl_run *r, nndl_net *net,
                                         nndl_train_state *state, nndl_err *err)
{
    /* The SHA-256 in the manifest guards against damage, not against a file made to match it; and
     * HDF5 1.10 can crash or hang on some damaged files. So the same load runs first in a forked
     * child with a time limit: reading the same bytes the same way, the parent's load then goes
     * through. */
    char one = 0;
    load_arg a = {path, r, net, state};
    nndl_status st = nndl_isolated(probe_checkpoint, &a, &one, 1, 120.0, path, err);
    return st == NNDL_OK ? load_checkpoint(path, r, net, state, err) : st;
}
