/* nndl/err.h: status codes and the error record every fallible nndl call fills.
 *
 * Library code never prints or exits: it returns an nndl_status and writes one line into an
 * nndl_err that names the problem and the fix. Only the programs (src/cli) print and choose
 * the exit status: NNDL_EARG (bad usage or input the user can fix) exits 2, the rest exit 1.
 */
#ifndef NNDL_ERR_H
#define NNDL_ERR_H

typedef enum {
    NNDL_OK = 0,
    NNDL_EARG,    /* a flag or argument is wrong: exit status 2 */
    NNDL_EFORMAT, /* a file is not what it should be (magic, size, range) */
    NNDL_EIO,     /* open/read/write failed */
    NNDL_ENOMEM,
    NNDL_EMPI,
    NNDL_EHDF5,
    NNDL_ENUM, /* numerical failure: NaN or Inf */
    NNDL_ESTOP /* a stop was requested (signal): not an error, ends with status 75 */
} nndl_status;

typedef struct {
    nndl_status code;
    int silent; /* another MPI rank reports this error (set by nndl_dist_agree) */
    char msg[1024];
} nndl_err;

/* Record code and a printf-style message in err (if not NULL); return code. */
nndl_status nndl_fail(nndl_err *err, nndl_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The exit status a program should use for st: 0, 2 for NNDL_EARG/NNDL_EFORMAT, 75 for a stop, 1
 * otherwise. */
int nndl_exit_status(nndl_status st);

const char *nndl_status_name(nndl_status st);

#endif
