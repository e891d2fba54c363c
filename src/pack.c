/* pack.c: a run as one self-contained HDF5 file (virtual datasets made real, links followed). */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runfile_int.h"

typedef struct {
    const char *base_dir; /* directory of the main file: relative sources resolve from there */
    nndl_err *err;
} pack_ctx;

/* ---- copying, object by object ---- */

static herr_t copy_attrs(hid_t src, hid_t dst)
{
    H5O_info_t info;
    if (H5Oget_info2(src, &info, H5O_INFO_NUM_ATTRS) < 0) return -1;
    for (hsize_t i = 0; i < info.num_attrs; i++) {
        hid_t a =
            H5Aopen_by_idx(src, ".", H5_INDEX_CRT_ORDER, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0)
            a = H5Aopen_by_idx(src, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0) return -1;
        char name[256];
        H5Aget_name(a, sizeof name, name);
        hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
        size_t bytes = H5Tget_size(t) * (size_t)H5Sget_simple_extent_npoints(sp);
        void *buf = malloc(bytes ? bytes : 1);
        herr_t rc = buf && H5Tis_variable_str(t) == 0 ? H5Aread(a, t, buf) : -1;
        if (rc >= 0 && strcmp(name, "note") != 0) {
            if (H5Aexists(dst, name) > 0) H5Adelete(dst, name);
            hid_t b = H5Acreate2(dst, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
            rc = b < 0 ? -1 : H5Awrite(b, t, buf);
            if (b >= 0) H5Aclose(b);
        }
        free(buf);
        H5Tclose(t);
        H5Sclose(sp);
        H5Aclose(a);
        if (rc < 0) return rc;
    }
    return 0;
}

/* A virtual dataset: every source file must exist; then read it whole and write it for real. */
static herr_t copy_virtual(hid_t d, hid_t dst, const char *name, pack_ctx *c)
{
    hid_t dcpl = H5Dget_create_plist(d);
    size_t n = 0;
    H5Pget_virtual_count(dcpl, &n);
    for (size_t i = 0; i < n; i++) {
        char file[4096], full[8300];
        if (H5Pget_virtual_filename(dcpl, i, file, sizeof file) < 0) continue;
        if (strcmp(file, ".") == 0) continue;
        snprintf(full, sizeof full, "%s/%s", file[0] == '/' ? "" : c->base_dir, file);
        if (access(full, R_OK) != 0) {
            nndl_fail(c->err, NNDL_EFORMAT,
                      "%s: companion file %s is missing; pack needs the run's companion directory",
                      name, full);
            H5Pclose(dcpl);
            return -1;
        }
    }
    H5Pclose(dcpl);
    hid_t sp = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[8], total = 1;
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    for (int i = 0; i < rank; i++) total *= dims[i];
    float *buf = malloc(sizeof(float) * (total ? total : 1));
    herr_t rc = buf ? H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : -1;
    if (rc >= 0) rc = h5u_write(dst, name, H5T_NATIVE_FLOAT, rank, dims, buf, 4);
    free(buf);
    return rc;
}

static herr_t copy_tree(hid_t src, hid_t dst, pack_ctx *c);

static herr_t copy_child(hid_t src, const char *name, hid_t dst, pack_ctx *c)
{
    H5O_info_t info;
    /* follows external links */
    if (H5Oget_info_by_name2(src, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
        nndl_fail(c->err, NNDL_EFORMAT, "/%s: cannot be read (a link to a missing companion file?)",
                  name);
        return -1;
    }
    herr_t rc = 0;
    if (info.type == H5O_TYPE_GROUP) {
        hid_t sg = H5Gopen2(src, name, H5P_DEFAULT),
              dg = H5Gcreate2(dst, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = sg < 0 || dg < 0 ? -1 : copy_attrs(sg, dg);
        if (rc >= 0) rc = copy_tree(sg, dg, c);
        if (sg >= 0) H5Gclose(sg);
        if (dg >= 0) H5Gclose(dg);
    } else if (info.type == H5O_TYPE_DATASET) {
        hid_t d = H5Dopen2(src, name, H5P_DEFAULT), dcpl = d < 0 ? -1 : H5Dget_create_plist(d);
        int virt = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_VIRTUAL;
        if (dcpl >= 0) H5Pclose(dcpl);
        rc = d < 0  ? -1
             : virt ? copy_virtual(d, dst, name, c)
                    : H5Ocopy(src, name, dst, name, H5P_DEFAULT, H5P_DEFAULT);
        if (rc >= 0 && virt) {
            hid_t nd = H5Dopen2(dst, name, H5P_DEFAULT);
            rc = nd < 0 ? -1 : copy_attrs(d, nd);
            if (nd >= 0) H5Dclose(nd);
        }
        if (d >= 0) H5Dclose(d);
    }
    return rc;
}

static herr_t copy_tree(hid_t src, hid_t dst, pack_ctx *c)
{
    H5G_info_t info;
    if (H5Gget_info(src, &info) < 0) return -1;
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[256];
        if (H5Lget_name_by_idx(src, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
            return -1;
        if (copy_child(src, name, dst, c) < 0) return -1;
    }
    return 0;
}

/* ---- the packed file ---- */

nndl_status nndl_runfile_pack(const nndl_run_paths *p, const char *out, nndl_err *err)
{
    nndl_status st = NNDL_OK;
    char tmp[4200], b[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    snprintf(b, sizeof b, "%s", p->main);
    pack_ctx c = {dirname(b), err};
    if ((st = manifest_verify_main(p, err)) != NNDL_OK) return st;
    hid_t src = h5u_open_ro(p->main), dst = -1;
    H5TRY(src, "%s: cannot open", p->main);
    H5TRY(dst = h5u_create(tmp), "%s: cannot create", tmp);
    H5TRY(copy_attrs(src, dst), "%s: copying attributes", tmp);
    if (copy_tree(src, dst, &c) < 0) {
        if (err && err->code != NNDL_EFORMAT)
            nndl_fail(err, NNDL_EHDF5, "%s: copying the run failed", tmp);
        st = err ? err->code : NNDL_EHDF5;
        goto out;
    }
    H5TRY(h5u_attr_str(dst, "companion_dir", ""), "%s: attribute", tmp);
    H5TRY(h5u_attr_str(dst, "packed_from", p->main), "%s: attribute", tmp);
    H5TRY(
        h5u_attr_str(dst, "note", "self-contained: packed by nndl-pack, no companion files needed"),
        "%s: attribute", tmp);
out:
    if (src >= 0) H5Fclose(src);
    return h5u_finish(dst, tmp, out, st, err);
}
