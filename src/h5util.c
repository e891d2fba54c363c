/* h5util.c: checked HDF5 helpers (see h5util.h). */
#include "h5util.h"

#include <unistd.h>

#include "nndl/safeio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- files and groups ---- */

void h5u_quiet(void)
{
    static int done;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

hid_t h5u_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    return fapl;
}

hid_t h5u_create(const char *path)
{
    h5u_quiet();
    errno = 0; /* so a failure's errno (ENOSPC, EACCES) can be reported */
    hid_t fapl = h5u_fapl(), f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    return f;
}

hid_t h5u_open_ro(const char *path)
{
    h5u_quiet();
    hid_t fapl = h5u_fapl(), f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    return f;
}

nndl_status h5u_finish(hid_t f, const char *tmp, const char *path, nndl_status st, nndl_err *err)
{
    if (f >= 0 && H5Fclose(f) < 0 && st == NNDL_OK)
        st = nndl_fail(err, NNDL_EIO, "%s: close failed (disk full?)", tmp);
    if (!path) return st;
    if (st == NNDL_OK) st = nndl_commit_file(tmp, path, err);
    if (st != NNDL_OK) unlink(tmp);
    return st;
}

hid_t h5u_group(hid_t loc, const char *path)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    hid_t g = H5Gopen2(loc, ".", H5P_DEFAULT);
    for (char *p = buf, *s; g >= 0 && p && *p; p = s) {
        if ((s = strchr(p, '/'))) *s++ = 0;
        hid_t next = H5Lexists(g, p, H5P_DEFAULT) > 0
                         ? H5Gopen2(g, p, H5P_DEFAULT)
                         : H5Gcreate2(g, p, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Gclose(g);
        g = next;
    }
    return g;
}

/* ---- attributes ---- */

static herr_t attr_write(hid_t loc, const char *name, hid_t type, const void *v)
{
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, type, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

herr_t h5u_attr_int(hid_t loc, const char *name, long long v)
{
    return attr_write(loc, name, H5T_NATIVE_LLONG, &v);
}
herr_t h5u_attr_double(hid_t loc, const char *name, double v)
{
    return attr_write(loc, name, H5T_NATIVE_DOUBLE, &v);
}

herr_t h5u_attr_str(hid_t loc, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) ? strlen(v) : 1);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    H5Tset_cset(t, H5T_CSET_UTF8);
    herr_t rc = attr_write(loc, name, t, strlen(v) ? v : " ");
    H5Tclose(t);
    return rc;
}

static herr_t attr_read(hid_t loc, const char *name, hid_t type, void *v)
{
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a);
    herr_t rc = H5Sget_simple_extent_npoints(sp) == 1 ? H5Aread(a, type, v) : -1;
    H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

herr_t h5u_get_attr_int(hid_t loc, const char *name, long long *v)
{
    return attr_read(loc, name, H5T_NATIVE_LLONG, v);
}
herr_t h5u_get_attr_double(hid_t loc, const char *name, double *v)
{
    return attr_read(loc, name, H5T_NATIVE_DOUBLE, v);
}

herr_t h5u_get_attr_str(hid_t loc, const char *name, char **v)
{
    *v = NULL;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    herr_t rc = -1;
    /* fixed-length only: see h5util.h */
    if (H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) == 0) {
        size_t n = H5Tget_size(ft);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n);
        H5Tset_strpad(mt, H5T_STR_NULLPAD);
        *v = n < (64u << 20) ? calloc(n + 1, 1) : NULL;
        if (*v && (rc = H5Aread(a, mt, *v)) < 0) {
            free(*v);
            *v = NULL;
        }
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

/* ---- datasets ---- */

herr_t h5u_write(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                 const void *data, int gzip)
{
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (n > 0) {
        H5Pset_chunk(dcpl, rank, dims); /* one chunk: each of nndl's datasets is read whole */
        if (gzip > 0) {
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, (unsigned)gzip);
        }
        H5Pset_fletcher32(dcpl);
    }
    hid_t ftype = type == H5T_NATIVE_FLOAT    ? H5T_IEEE_F32LE
                  : type == H5T_NATIVE_DOUBLE ? H5T_IEEE_F64LE
                  : type == H5T_NATIVE_INT    ? H5T_STD_I32LE
                  : type == H5T_NATIVE_UINT8  ? H5T_STD_U8LE
                                              : H5T_STD_I64LE;
    hid_t d = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : n > 0 ? H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
    if (d >= 0 && H5Dclose(d) < 0) rc = -1;
    H5Pclose(dcpl);
    H5Sclose(sp);
    return rc;
}

int h5u_shape(hid_t loc, const char *name, hsize_t *dims)
{
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank > 8 || rank < 0)
        rank = -1;
    else
        H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    return rank;
}

herr_t h5u_read(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, void *data)
{
    hsize_t have[8];
    int r = h5u_shape(loc, name, have);
    if (r < 0) return -1;
    if (r != rank) return -2;
    for (int i = 0; i < rank; i++)
        if (have[i] != dims[i]) return -2;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (d >= 0) H5Dclose(d);
    return rc;
}
