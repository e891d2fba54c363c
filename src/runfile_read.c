/* runfile_read.c: --init-from (isolated read of any HDF5 file), nndl-eval's results, packing. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runfile_int.h"

/* ---- --init-from ---- */

typedef struct {
    const char *path;
    const nndl_net *net;
} model_arg;

/* In the isolated child: read /model/layer_K into out (laid out as net->params). */
static nndl_status read_model_child(void *arg, void *out, size_t cap, nndl_err *err)
{
    const model_arg *a = arg;
    const nndl_net *net = a->net;
    nndl_status st = NNDL_OK;
    hid_t f = h5u_open_ro(a->path);
    if (f < 0)
        return nndl_fail(err, NNDL_EFORMAT,
                         "%s: not an HDF5 file, or damaged (HDF5 cannot open it)", a->path);
    for (int l = 0; l < net->n_layers && st == NNDL_OK; l++) {
        const nndl_layer *L = &net->layer[l];
        const char *part[2] = {"weights", "biases"};
        hsize_t want[2][2] = {{(hsize_t)L->n_out, (hsize_t)L->n_in}, {(hsize_t)L->n_out, 0}};
        float *dst[2] = {(float *)out + (L->w - net->params), (float *)out + (L->b - net->params)};
        for (int k = 0; k < 2 && st == NNDL_OK; k++) {
            char name[96];
            hsize_t have[8] = {0};
            snprintf(name, sizeof name, "model/layer_%d/%s", l + 1, part[k]);
            int rank = H5Lexists(f, "model", H5P_DEFAULT) > 0 ? h5u_shape(f, name, have) : -1;
            if (rank < 0)
                st = nndl_fail(err, NNDL_EFORMAT,
                               "%s: no dataset /%s: --init-from needs /model/layer_K/weights "
                               "[out x in] and /biases [out] for K = 1..%d",
                               a->path, name, net->n_layers);
            else if (rank != 2 - k || have[0] != want[k][0] || (k == 0 && have[1] != want[k][1]))
                st = nndl_fail(
                    err, NNDL_EARG,
                    "%s: /%s has shape %llu%s%llu, the network (--sizes) needs %llu%s%llu", a->path,
                    name, (unsigned long long)have[0], rank > 1 ? "x" : "",
                    rank > 1 ? (unsigned long long)have[1] : 0ull, (unsigned long long)want[k][0],
                    k ? "" : "x", k ? 0ull : (unsigned long long)want[k][1]);
            else if (h5u_read(f, name, H5T_NATIVE_FLOAT, rank, have, dst[k]) < 0)
                st = nndl_fail(err, NNDL_EFORMAT, "%s: cannot read /%s (damaged?)", a->path, name);
        }
    }
    H5Fclose(f);
    (void)cap;
    return st;
}

nndl_status nndl_runfile_load_model(const char *path, nndl_net *net, nndl_err *err)
{
    if (access(path, R_OK) != 0) return nndl_fail(err, NNDL_EARG, "%s: %s", path, strerror(errno));
    float *buf = malloc(sizeof(float) * net->n_params);
    if (!buf) return nndl_fail(err, NNDL_ENOMEM, "out of memory");
    model_arg a = {path, net};
    nndl_status st =
        nndl_isolated(read_model_child, &a, buf, sizeof(float) * net->n_params, 60.0, path, err);
    if (st == NNDL_OK) memcpy(net->params, buf, sizeof(float) * net->n_params);
    free(buf);
    return st;
}

/* ---- eval results ---- */

static herr_t copy_other_splits(hid_t src, hid_t dst, const char *skip)
{
    hid_t g = H5Gopen2(src, "eval", H5P_DEFAULT);
    if (g < 0) return 0;
    H5G_info_t info;
    herr_t rc = H5Gget_info(g, &info);
    for (hsize_t i = 0; rc >= 0 && i < info.nlinks; i++) {
        char name[256];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
            continue;
        if (strcmp(name, skip) == 0) continue;
        hid_t dg = h5u_group(dst, "eval");
        rc = dg < 0 ? -1 : H5Ocopy(g, name, dg, name, H5P_DEFAULT, H5P_DEFAULT);
        if (dg >= 0) H5Gclose(dg);
    }
    H5Gclose(g);
    return rc;
}

/* Add the /eval external link to the main file if it lacks it: a byte copy, patched, renamed. */
static nndl_status link_eval(const nndl_run_paths *p, cJSON *m, nndl_err *err)
{
    char sha[NNDL_SHA256_HEX], tmp[4200], cmd[9000], b[4200];
    nndl_status st = manifest_verify_main(p, err);
    if (st != NNDL_OK) return st;
    hid_t f = h5u_open_ro(p->main);
    int has = f >= 0 && H5Lexists(f, "eval", H5P_DEFAULT) > 0;
    if (f >= 0) H5Fclose(f);
    if (has) return NNDL_OK;
    snprintf(tmp, sizeof tmp, "%s.tmp", p->main);
    snprintf(cmd, sizeof cmd, "cp -- '%s' '%s'", p->main, tmp);
    if (strchr(p->main, '\'') || system(cmd) != 0)
        return nndl_fail(err, NNDL_EIO, "cannot copy %s to %s", p->main, tmp);
    h5u_quiet();
    hid_t fapl = h5u_fapl();
    f = H5Fopen(tmp, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    char target[4400];
    snprintf(b, sizeof b, "%s", p->dir);
    snprintf(target, sizeof target, "%s/eval.h5", basename(b));
    if (f < 0 || H5Lcreate_external(target, "/eval", f, "eval", H5P_DEFAULT, H5P_DEFAULT) < 0)
        st = nndl_fail(err, NNDL_EHDF5, "%s: cannot add the /eval link", tmp);
    if ((st = h5u_finish(f, tmp, p->main, st, err)) != NNDL_OK) return st;
    if ((st = nndl_sha256_file(p->main, sha, err)) != NNDL_OK) return st;
    cJSON_DeleteItemFromObject(m, "main_sha256");
    cJSON_AddStringToObject(m, "main_sha256", sha);
    return manifest_save(p, m, err);
}

nndl_status nndl_runfile_store_eval(const nndl_run_paths *p, const char *split,
                                    const int64_t *confusion, int n, double accuracy, double cost,
                                    int epoch, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    char path[4400], tmp[4500], gname[96];
    snprintf(path, sizeof path, "%s/eval.h5", p->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(gname, sizeof gname, "eval/%s", split);
    cJSON *m = NULL;
    hid_t f = -1, old = -1, g = -1;
    if ((st = manifest_load(p, 0, &m, err)) != NNDL_OK) return st;
    if (access(path, F_OK) == 0) { /* keep the other splits' results */
        if ((st = manifest_verify(p, m, "eval.h5", err)) != NNDL_OK) goto out;
        H5TRY(old = h5u_open_ro(path), "%s: cannot open", path);
    }
    H5TRY(f = h5u_create(tmp), "%s: cannot create: %s", tmp,
          errno ? strerror(errno) : "HDF5 error");
    if (old >= 0) H5TRY(copy_other_splits(old, f, split), "%s: copying earlier results", tmp);
    H5TRY(g = h5u_group(f, gname), "%s: /%s", tmp, gname);
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)n};
    H5TRY(h5u_write(g, "confusion", H5T_NATIVE_LLONG, 2, dims, confusion, 0), "%s: confusion", tmp);
    H5TRY(h5u_attr_double(g, "accuracy", accuracy), "%s: attribute", tmp);
    H5TRY(h5u_attr_double(g, "cost", cost), "%s: attribute", tmp);
    H5TRY(h5u_attr_int(g, "epoch", epoch), "%s: attribute", tmp);
    H5TRY(h5u_attr_str(g, "rows_columns", "rows = true label, columns = predicted label"),
          "%s: attribute", tmp);
out:
    if (g >= 0) H5Gclose(g);
    if (old >= 0) H5Fclose(old);
    st = h5u_finish(f, tmp, path, st, err);
    cJSON_Delete(m);
    if (st == NNDL_OK) st = manifest_add_file(p, NULL, "eval.h5", err);
    if (st == NNDL_OK && (st = manifest_load(p, 0, &m, err)) == NNDL_OK) {
        st = link_eval(p, m, err);
        cJSON_Delete(m);
    }
    return st;
}
