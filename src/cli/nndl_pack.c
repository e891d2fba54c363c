/* nndl-pack RUN.h5 OUT.h5: one self-contained HDF5 file (no links, no companion files) for sharing.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nndl/runfile.h"
#include "nndl/version.h"

int main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        puts("usage: nndl-pack RUN.h5 OUT.h5\n"
             "Copy a run into one self-contained HDF5 file: the weight histories and activations "
             "(virtual\n"
             "datasets over RUN.h5.d/) become real datasets, /checkpoint and /eval become groups.\n"
             "Example: nndl-pack runs/ch1.h5 ch1-packed.h5");
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        printf("nndl-pack %s\n", NNDL_VERSION);
        return 0;
    }
    if (argc != 3) {
        fprintf(
            stderr,
            "nndl-pack: error: expected RUN.h5 OUT.h5 (e.g. nndl-pack runs/ch1.h5 ch1-packed.h5), "
            "found %d arguments\n",
            argc - 1);
        return 2;
    }
    if (access(argv[2], F_OK) == 0) {
        fprintf(
            stderr,
            "nndl-pack: error: %s exists; choose another output name (nothing is overwritten)\n",
            argv[2]);
        return 2;
    }
    nndl_run_paths p;
    nndl_err err = {0};
    nndl_run_paths_of(&p, argv[1]);
    nndl_status st = nndl_runfile_pack(&p, argv[2], &err);
    if (st != NNDL_OK) {
        fprintf(stderr, "nndl-pack: error: %s\n", err.msg);
        return nndl_exit_status(st);
    }
    printf("packed %s into %s\n", argv[1], argv[2]);
    return 0;
}
