/* runfile.c: the main run file, weight histories, probe activations, eval results, --init-from,
 * and packing (see nndl/runfile.h, docs/runfile.md). */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nndl/version.h"
#include "runfile_int.h"

static const char *base_of(const char *path, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", path);
    return basename(buf);
}

/* ---- weight history: one file per snapshot, rank 0 ---- */

nndl_status nndl_runfile_history(const nndl_run_paths *p, int epoch, const nndl_net *net, int gzip,
                                 nndl_err *err)
{
    nndl_status st = NNDL_OK;
    char name[64], path[4400], tmp[4500];
    snprintf(name, sizeof name, "hist-%06d.h5", epoch);
    snprintf(path, sizeof path, "%s/%s", p->dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f = h5u_create(tmp);
    H5TRY(f, "%s: cannot create: %s", tmp, errno ? strerror(errno) : "HDF5 error");
    H5TRY(h5u_attr_int(f, "epoch", epoch), "%s: attribute", tmp);
    H5TRY(write_layers(f, "history", net, net->params, gzip), "%s: writing the weights failed",
          tmp);
out:
    st = h5u_finish(f, tmp, path, st, err);
    return st == NNDL_OK ? manifest_add_file(p, NULL, name, err) : st;
}

/* ---- probe activations: one file per snapshot, every rank writes its rows ---- */

/* Rows [first, first + rows) of a new dataset name [dims[0] x dims[1..rank)] written collectively
 * (every rank calls it; a rank with no rows selects none). */
static herr_t write_rows(hid_t g, const char *name, int rank, const hsize_t *dims, int first,
                         int rows, const float *data, hid_t dxpl)
{
    hsize_t start[4] = {(hsize_t)first, 0, 0, 0}, count[4];
    for (int i = 0; i < rank; i++) count[i] = i ? dims[i] : (hsize_t)rows;
    hid_t fs = H5Screate_simple(rank, dims, NULL), ms = H5Screate_simple(rank, count, NULL), d = -1;
    herr_t rc = fs < 0 || ms < 0 ? -1 : 0;
    if (rc >= 0) d = H5Dcreate2(g, name, H5T_IEEE_F32LE, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0) rc = -1;
    if (rc >= 0 && rows > 0) rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (rc >= 0 && rows == 0) rc = H5Sselect_none(fs) < 0 || H5Sselect_none(ms) < 0 ? -1 : 0;
    if (rc >= 0) rc = H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, dxpl, data);
    if (d >= 0) H5Dclose(d);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

nndl_status nndl_runfile_activations(MPI_Comm comm, const nndl_run_paths *p, int epoch,
                                     const nndl_run *r, const nndl_net *net, float *const *act,
                                     int first, int rows, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    int rank;
    MPI_Comm_rank(comm, &rank);
    char name[64], path[4400], tmp[4500];
    snprintf(name, sizeof name, "act-%06d.h5", epoch);
    snprintf(path, sizeof path, "%s/%s", p->dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    h5u_quiet();
    hid_t fapl = h5u_fapl(), dxpl = H5Pcreate(H5P_DATASET_XFER), f = -1, g = -1;
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    errno = 0;
    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl); /* collective */
    H5TRY(f, "%s: cannot create: %s", tmp, errno ? strerror(errno) : "HDF5 error");
    H5TRY(h5u_attr_int(f, "epoch", epoch), "%s: attribute", tmp);
    H5TRY(g = h5u_group(f, "activations"), "%s: group", tmp);
    for (int k = 0; k < r->n_probe_layers; k++) {
        char dname[32];
        snprintf(dname, sizeof dname, "layer_%d", r->probe_layers[k]);
        int l = r->probe_layers[k], n_rows = probe_rows_of(r, net, l);
        hsize_t dims[4] = {(hsize_t)n_rows};
        int rank = 1 + probe_dims(net, l, dims + 1);
        int mine = first >= n_rows ? 0 : first + rows > n_rows ? n_rows - first : rows;
        H5TRY(write_rows(g, dname, rank, dims, mine ? first : 0, mine, act[k], dxpl),
              "%s: collective write of %s", tmp, dname);
    }
out:
    if (g >= 0) H5Gclose(g);
    H5Pclose(fapl);
    H5Pclose(dxpl);
    /* rank 0 commits; the caller agrees on the status */
    st = h5u_finish(f, tmp, rank == 0 ? path : NULL, st, err);
    return st == NNDL_OK && rank == 0 ? manifest_add_file(p, NULL, name, err) : st;
}

/* ---- the main file ---- */

/* A virtual dataset [S x inner] over the snapshot files: row s from FILE(s):SRC of shape inner. */
static herr_t write_vds(hid_t loc, const char *name, const char *dirbase, const char *prefix,
                        const int *snap_epoch, int n_snaps, const char *src, int rank,
                        const hsize_t *inner)
{
    hsize_t dims[8] = {(hsize_t)n_snaps}, start[8] = {0}, count[8] = {1};
    for (int i = 0; i < rank; i++) dims[i + 1] = count[i + 1] = inner[i];
    hid_t vs = H5Screate_simple(rank + 1, dims, NULL), ss = H5Screate_simple(rank, inner, NULL),
          dcpl = H5Pcreate(H5P_DATASET_CREATE);
    float nan = NAN; /* a missing companion file reads as NaN, never as plausible zeros */
    H5Pset_fill_value(dcpl, H5T_NATIVE_FLOAT, &nan);
    for (int s = 0; s < n_snaps; s++) {
        char file[4400];
        snprintf(file, sizeof file, "%s/%s-%06d.h5", dirbase, prefix, snap_epoch[s]);
        start[0] = (hsize_t)s;
        H5Sselect_hyperslab(vs, H5S_SELECT_SET, start, NULL, count, NULL);
        H5Pset_virtual(dcpl, vs, file, src, ss);
    }
    H5Sselect_all(vs);
    hid_t d = H5Dcreate2(loc, name, H5T_IEEE_F32LE, vs, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1
                      : h5u_attr_str(d, "note",
                                     "virtual: reads the snapshot files in the run's companion "
                                     "directory; NaN where one is missing");
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(vs);
    H5Sclose(ss);
    return rc;
}

static herr_t write_history(hid_t f, const nndl_run *r, const nndl_net *net, const char *dirbase)
{
    hid_t g = h5u_group(f, "history");
    hsize_t ns = (hsize_t)r->n_snaps;
    herr_t rc = g < 0 ? -1 : h5u_write(g, "epoch", H5T_NATIVE_INT, 1, &ns, r->snap_epoch, 0);
    for (int l = 0; rc >= 0 && l < net->n_layers && r->n_snaps > 0; l++) {
        char name[64], src[96];
        hsize_t wd[4];
        int rank = layer_dims(&net->layer[l], wd);
        snprintf(name, sizeof name, "layer_%d", l + 1);
        hid_t lg = h5u_group(g, name);
        snprintf(src, sizeof src, "/history/layer_%d/weights", l + 1);
        rc = lg < 0 ? -1
                    : write_vds(lg, "weights", dirbase, "hist", r->snap_epoch, r->n_snaps, src,
                                rank, wd);
        snprintf(src, sizeof src, "/history/layer_%d/biases", l + 1);
        if (rc >= 0)
            rc = write_vds(lg, "biases", dirbase, "hist", r->snap_epoch, r->n_snaps, src, 1, wd);
        if (lg >= 0) H5Gclose(lg);
    }
    if (g >= 0) H5Gclose(g);
    return rc;
}

static herr_t write_activations(hid_t f, const nndl_run *r, const nndl_net *net,
                                const char *dirbase)
{
    if (r->n_probe <= 0 || r->n_probe_layers <= 0) return 0;
    static const char *const names[4] = {"epoch", "indices", "labels", "layers"};
    hid_t g = h5u_group(f, "activations");
    herr_t rc = write_probes(g, r, names);
    if (rc >= 0) rc = h5u_attr_int(g, "probe_conv", r->probe_conv);
    hsize_t im[3] = {(hsize_t)r->probe_conv, (hsize_t)r->image_h, (hsize_t)r->image_w};
    if (rc >= 0 && r->probe_images &&
        r->probe_conv > 0) /* the images whose feature maps are kept */
        rc = h5u_write(g, "images", H5T_NATIVE_UINT8, 3, im, r->probe_images, 0);
    for (int k = 0; rc >= 0 && k < r->n_probe_layers && r->n_snaps > 0; k++) {
        char name[64], src[96];
        int l = r->probe_layers[k];
        hsize_t inner[4] = {(hsize_t)probe_rows_of(r, net, l)};
        int rank = 1 + probe_dims(net, l, inner + 1);
        snprintf(name, sizeof name, "layer_%d", l);
        snprintf(src, sizeof src, "/activations/%s", name);
        rc = write_vds(g, name, dirbase, "act", r->snap_epoch, r->n_snaps, src, rank, inner);
    }
    if (g >= 0) H5Gclose(g);
    return rc;
}

/* /checkpoint -> the newest checkpoint file, /eval -> eval.h5 when it exists (external links) */
static herr_t write_links(hid_t f, const nndl_run_paths *p, const char *dirbase)
{
    cJSON *m = NULL;
    nndl_err e;
    if (manifest_load(p, 0, &m, &e) != NNDL_OK) return 0;
    cJSON *list = cJSON_GetObjectItem(m, "checkpoints");
    cJSON *last = cJSON_GetArrayItem(list, cJSON_GetArraySize(list) - 1);
    char file[4400];
    herr_t rc = 0;
    if (cJSON_IsString(last)) {
        snprintf(file, sizeof file, "%s/%s", dirbase, last->valuestring);
        rc = H5Lcreate_external(file, "/", f, "checkpoint", H5P_DEFAULT, H5P_DEFAULT);
    }
    if (rc >= 0 &&
        cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "files"), "eval.h5"))) {
        snprintf(file, sizeof file, "%s/eval.h5", dirbase);
        rc = H5Lcreate_external(file, "/eval", f, "eval", H5P_DEFAULT, H5P_DEFAULT);
    }
    cJSON_Delete(m);
    return rc;
}

static nndl_status record_main(const nndl_run_paths *p, const char *config_json, nndl_err *err)
{
    char sha[NNDL_SHA256_HEX];
    cJSON *m;
    nndl_status st = nndl_sha256_file(p->main, sha, err);
    if (st == NNDL_OK) st = manifest_load(p, 1, &m, err);
    if (st != NNDL_OK) return st;
    manifest_set_config(m, config_json);
    cJSON_DeleteItemFromObject(m, "main_sha256");
    cJSON_AddStringToObject(m, "main_sha256", sha);
    st = manifest_save(p, m, err);
    cJSON_Delete(m);
    return st;
}

nndl_status nndl_runfile_write_main(const nndl_run_paths *p, const nndl_run *r, const nndl_net *net,
                                    const nndl_train_state *state, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    char tmp[4200], b1[4200], dirbase[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", p->main);
    snprintf(dirbase, sizeof dirbase, "%s", base_of(p->dir, b1, sizeof b1));
    hid_t f = h5u_create(tmp);
    H5TRY(f, "%s: cannot create: %s", tmp, errno ? strerror(errno) : "HDF5 error");
    H5TRY(h5u_attr_int(f, "nndl_format_version", NNDL_FORMAT_VERSION), "%s: attribute", tmp);
    const char *keys[] = {"config",  "command_line",   "nndl_version", "host",         "start_time",
                          "dataset", "dataset_sha256", "status",       "companion_dir"};
    const char *vals[] = {
        r->config_json, r->command_line, NNDL_VERSION,           r->host,
        r->start_time,  r->dataset,      r->dataset_sha256_json, r->status ? r->status : "running",
        dirbase};
    for (int i = 0; i < 9; i++)
        H5TRY(h5u_attr_str(f, keys[i], vals[i] ? vals[i] : ""), "%s: attribute %s", tmp, keys[i]);
    char note[9000];
    snprintf(note, sizeof note,
             "the weight history, probe activations, /checkpoint and /eval live in the companion "
             "directory %s beside this file: copy it along (without it they read as NaN or do not "
             "open), or share "
             "the self-contained file that nndl-pack makes",
             dirbase);
    H5TRY(h5u_attr_str(f, "note", note), "%s: attribute", tmp);
    H5TRY(h5u_attr_int(f, "mpi_world_size", r->world_size), "%s: attribute", tmp);
    H5TRY(h5u_attr_int(f, "exit_status", r->exit_status), "%s: attribute", tmp);
    H5TRY(h5u_attr_int(f, "epoch", state->epoch), "%s: attribute", tmp);
    H5TRY(h5u_attr_int(f, "step", state->step), "%s: attribute", tmp);
    H5TRY(write_layers(f, "model", net, net->params, 0), "%s: /model", tmp);
    H5TRY(write_metrics(f, r), "%s: /metrics", tmp);
    H5TRY(write_speed(f, r), "%s: /speed", tmp);
    H5TRY(write_best(f, r, net), "%s: /best", tmp);
    H5TRY(write_history(f, r, net, dirbase), "%s: /history", tmp);
    H5TRY(write_activations(f, r, net, dirbase), "%s: /activations", tmp);
    H5TRY(write_links(f, p, dirbase), "%s: links to the checkpoint and eval files", tmp);
out:
    st = h5u_finish(f, tmp, p->main, st, err);
    if (st != NNDL_OK) return st;
    return record_main(p, r->config_json, err);
}
