/* err.c: the error record (see nndl/err.h). */
#include "nndl/err.h"

#include <stdarg.h>
#include <stdio.h>

nndl_status nndl_fail(nndl_err *err, nndl_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
        err->silent = 0;
    }
    return code;
}

int nndl_exit_status(nndl_status st)
{
    switch (st) {
    case NNDL_OK: return 0;
    case NNDL_EARG:
    case NNDL_EFORMAT: return 2; /* the user can fix it: wrong flag, wrong or damaged input file */
    case NNDL_ESTOP: return 75;  /* EX_TEMPFAIL: checkpointed, run again to resume */
    default: return 1;
    }
}

const char *nndl_status_name(nndl_status st)
{
    static const char *names[] = {"ok",  "usage", "format",  "io",  "nomem",
                                  "mpi", "hdf5",  "numeric", "stop"};
    return (unsigned)st < sizeof names / sizeof *names ? names[st] : "unknown";
}
