/* nndl/safeio.h: files that are never half-written, and checksums to trust them by.
 *
 * Every file nndl writes goes to a temporary name in the same directory, is fsync'ed, renamed
 * over its final name, and the directory is fsync'ed: a reader (or a resume after kill -9) sees
 * the old file or the new one, never part of one. SHA-256 sums (OpenSSL libcrypto) of the files
 * are kept in the run's manifest and checked before HDF5 ever opens a file, because HDF5 1.10
 * itself can crash or hang on damaged bytes.
 */
#ifndef NNDL_SAFEIO_H
#define NNDL_SAFEIO_H

#include <stddef.h>

#include "nndl/err.h"

#define NNDL_SHA256_HEX 65 /* 64 hex digits and NUL */

/* hex = SHA-256 of the file at path. */
nndl_status nndl_sha256_file(const char *path, char hex[NNDL_SHA256_HEX], nndl_err *err);

/* hex = SHA-256 of len bytes at data (e.g. a network's float32 parameters: the weights'
 * fingerprint). */
void nndl_sha256_bytes(const void *data, size_t len, char hex[NNDL_SHA256_HEX]);

/* fsync path, rename it to final, fsync final's directory. */
nndl_status nndl_commit_file(const char *tmp, const char *final, nndl_err *err);

/* Write len bytes to path atomically (temporary, fsync, rename, fsync directory). */
nndl_status nndl_write_file_atomic(const char *path, const void *data, size_t len, nndl_err *err);

/* Read a whole (small) file into a NUL-terminated malloc'ed buffer (at most max bytes). */
nndl_status nndl_read_file(const char *path, size_t max, char **out, size_t *len, nndl_err *err);

/* mkdir -p for the directory part of path ("runs/x.h5" -> "runs"); do not create it, but check
 * that it exists and that we may create files in it (fail early, before an hour of training). */
nndl_status nndl_check_writable_dir(const char *dir, const char *what, nndl_err *err);

/* Call fn(arg, out, cap, err) in a forked child with a time limit, for reading files of unknown
 * origin with a library that may crash or hang on damaged input (HDF5). The child sends back its
 * error record and the cap bytes of out; the parent returns fn's status and message, or says the
 * reader crashed (signal) or timed out. */
typedef nndl_status (*nndl_isolated_fn)(void *arg, void *out, size_t cap, nndl_err *err);
nndl_status nndl_isolated(nndl_isolated_fn fn, void *arg, void *out, size_t cap, double seconds,
                          const char *what, nndl_err *err);

#endif
