/* h5util.h: small checked wrappers over the HDF5 C API, for runfile.c and ckpt.c only.
 * H5TRY(expr, what): on a negative result record "what" in err, set st and jump to out. */
#ifndef NNDL_H5UTIL_H
#define NNDL_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

#include "nndl/err.h"

#define H5TRY(expr, ...)                                                                           \
    do {                                                                                           \
        if ((expr) < 0) {                                                                          \
            st = nndl_fail(err, NNDL_EHDF5, __VA_ARGS__);                                          \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Quiet HDF5's own error printing (once); nndl reports errors itself. */
void h5u_quiet(void);

/* File access with the newest format (checksummed metadata); fapl for serial files. */
hid_t h5u_fapl(void);
/* Create path (truncating) / open read-only, with h5u_fapl. */
hid_t h5u_create(const char *path);
hid_t h5u_open_ro(const char *path);

/* Finish a file written under the temporary name tmp: close f (a failed close is a failed write:
 * disk full), then, if all went well and path is not NULL, commit tmp as path (nndl_commit_file); a
 * failure leaves no temporary behind. Returns the first failure (st if it already was one). */
nndl_status h5u_finish(hid_t f, const char *tmp, const char *path, nndl_status st, nndl_err *err);

/* Groups: create every missing group of path ("a/b/c"). Returns the last one (close it). */
hid_t h5u_group(hid_t loc, const char *path);

/* Attributes (scalar); strings are fixed-length: no global heap, which damaged files crash. */
herr_t h5u_attr_int(hid_t loc, const char *name, long long v);
herr_t h5u_attr_double(hid_t loc, const char *name, double v);
herr_t h5u_attr_str(hid_t loc, const char *name, const char *v);
/* Read them; a string into a malloc'ed buffer. */
herr_t h5u_get_attr_int(hid_t loc, const char *name, long long *v);
herr_t h5u_get_attr_double(hid_t loc, const char *name, double *v);
herr_t h5u_get_attr_str(hid_t loc, const char *name, char **v);

/* Write an n-dimensional dataset of mem type (H5T_NATIVE_FLOAT, ...); chunked with fletcher32
 * checksums (and gzip level if > 0) unless it is empty. */
herr_t h5u_write(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                 const void *data, int gzip);
/* Read a whole dataset whose shape must be exactly dims (rank dims); a mismatch returns -2. */
herr_t h5u_read(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, void *data);
/* The shape of a dataset (up to 8 dims): returns rank or -1. */
int h5u_shape(hid_t loc, const char *name, hsize_t *dims);

#endif
