/* libFuzzer harness: the run-file loaders on HDF5 bytes, as --resume (nndl_runfile_load_checkpoint)
 * and --init-from (nndl_runfile_load_model) would read them. HDF5 1.10.8 itself crashes or hangs
 * on some damaged files; both loaders read in a forked child with a time limit first, so this
 * process must never crash or hang, whatever the bytes: a failure must come back as an error.
 * The network is the seeds' 784-4-10 (tests/fuzz/make-seeds). */
#include "fuzz_util.h"
#include "nndl/runfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static nndl_net *net;
    static char path[300];
    if (!net) {
        int sizes[] = {784, 4, 10};
        nndl_err e;
        setenv("NNDL_READER_TIMEOUT", "5", 0);
        if (nndl_net_create(&net, sizes, 3, NULL, NNDL_COST_CROSS_ENTROPY, &e) != NNDL_OK) abort();
        snprintf(path, sizeof path, "%s/ckpt.h5", fuzz_dir());
    }
    static long inputs, ok, contained;
    fuzz_write(path, data, size);
    for (int k = 0; k < 2; k++) {
        nndl_err err = {0};
        nndl_run r;
        nndl_train_state z = {0};
        memset(&r, 0, sizeof r);
        nndl_status st = k ? nndl_runfile_load_checkpoint(path, &r, net, &z, &err)
                           : nndl_runfile_load_model(path, net, &err);
        if (st != NNDL_OK && !err.msg[0]) abort();
        ok += st == NNDL_OK;
        contained +=
            strstr(err.msg, "crashed the reader") || strstr(err.msg, "did not finish within");
        nndl_run_free(&r);
    }
    if (++inputs % 500 == 0) /* what HDF5 did, contained by the isolated readers */
        fprintf(
            stderr,
            "fuzz_runfile: %ld inputs: %ld loads succeeded, %ld HDF5 crashes or hangs contained\n",
            inputs, ok, contained);
    return 0;
}
