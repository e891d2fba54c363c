/* dist.c: shards and the reductions of data-parallel training (see nndl/dist.h). */
#include "nndl/dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

void nndl_dist_shard(int n, int P, int r, int *first, int *len)
{
    int base = n / P, rem = n % P;
    *first = r * base + (r < rem ? r : rem);
    *len = base + (r < rem);
}

static nndl_status mpi_fail(nndl_err *err, int rc, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(rc, s, &n);
    return nndl_fail(err, NNDL_EMPI, "%s failed: %s", what, s);
}

nndl_status nndl_dist_init(nndl_dist *d, MPI_Comm comm, nndl_err *err)
{
    int rc;
    d->comm = comm;
    if ((rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN)) != MPI_SUCCESS ||
        (rc = MPI_Comm_rank(comm, &d->rank)) != MPI_SUCCESS || (rc = MPI_Comm_size(comm, &d->size)) != MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI communicator setup");
    return NNDL_OK;
}

nndl_status nndl_dist_sum_floats(const nndl_dist *d, float *buf, size_t n, nndl_err *err)
{
    if (d->size == 1) return NNDL_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, d->comm);
    return rc == MPI_SUCCESS ? NNDL_OK : mpi_fail(err, rc, "MPI_Allreduce of the gradient");
}

nndl_status nndl_dist_sum_doubles(const nndl_dist *d, double *buf, int n, nndl_err *err)
{
    if (d->size == 1) return NNDL_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, d->comm);
    return rc == MPI_SUCCESS ? NNDL_OK : mpi_fail(err, rc, "MPI_Allreduce of the metrics");
}

nndl_status nndl_dist_agree(const nndl_dist *d, nndl_status st, nndl_err *err, int *reporter)
{
    struct { int value, rank; } in = {(int)st, d->rank}, out = in;
    if (d->size > 1) {
        int rc = MPI_Allreduce(&in, &out, 1, MPI_2INT, MPI_MAXLOC, d->comm); /* ties: lowest rank */
        if (rc != MPI_SUCCESS) {
            if (reporter) *reporter = 1;
            return mpi_fail(err, rc, "MPI_Allreduce agreeing on errors");
        }
    }
    if (reporter) *reporter = out.value != NNDL_OK && out.rank == d->rank;
    if (out.value != NNDL_OK && out.rank != d->rank) {
        nndl_fail(err, (nndl_status)out.value, "rank %d failed (it reports why)", out.rank);
        if (err) err->silent = 1;
    }
    return (nndl_status)out.value;
}

nndl_status nndl_dist_bcast(const nndl_dist *d, void *buf, size_t bytes, nndl_err *err)
{
    for (size_t off = 0; d->size > 1 && off < bytes;) { /* MPI counts are int: send in pieces of 1 GiB */
        int n = bytes - off > (1u << 30) ? (1 << 30) : (int)(bytes - off);
        int rc = MPI_Bcast((char *)buf + off, n, MPI_BYTE, 0, d->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Bcast");
        off += (size_t)n;
    }
    return NNDL_OK;
}

nndl_status nndl_dist_bcast_str(const nndl_dist *d, char **s, nndl_err *err)
{
    long long n = d->rank == 0 && *s ? (long long)strlen(*s) : -1;
    nndl_status st = nndl_dist_bcast(d, &n, sizeof n, err);
    if (st != NNDL_OK) return st;
    if (d->rank == 0) return n < 0 ? NNDL_OK : nndl_dist_bcast(d, *s, (size_t)n, err);
    free(*s);
    *s = NULL;
    if (n < 0) return NNDL_OK;
    if (!(*s = malloc((size_t)n + 1))) return nndl_fail(err, NNDL_ENOMEM, "out of memory");
    (*s)[n] = 0;
    return nndl_dist_bcast(d, *s, (size_t)n, err);
}
