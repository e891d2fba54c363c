/* libFuzzer harness: a run's MANIFEST.json as --resume reads it (format checks, the configuration,
 * the list of checkpoints and their SHA-256). Never a crash; a failure names its reason; nothing
 * outside the run's directory is read through a name in it. */
#include <sys/stat.h>

#include "fuzz_util.h"
#include "nndl/runfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static nndl_run_paths p;
    static char manifest[4400];
    if (!p.main[0]) {
        char main[300];
        snprintf(main, sizeof main, "%s/run.h5", fuzz_dir());
        nndl_run_paths_of(&p, main);
        mkdir(p.dir, 0700);
        snprintf(manifest, sizeof manifest, "%s/MANIFEST.json", p.dir);
        char ck[4400]; /* one real file the manifest may name (its SHA-256 is that of "nndl\n") */
        snprintf(ck, sizeof ck, "%s/ckpt-000001-00000000.h5", p.dir);
        fuzz_write(ck, (const uint8_t *)"nndl\n", 5);
    }
    fuzz_write(manifest, data, size);
    char *cfg = NULL, ckpt[4400];
    nndl_err err = {0};
    nndl_status st = nndl_runfile_open(&p, &cfg, ckpt, sizeof ckpt, &err);
    if (st == NNDL_OK && ckpt[0] && strncmp(ckpt, p.dir, strlen(p.dir)) != 0) abort();
    if (st == NNDL_OK && ckpt[0] && strchr(ckpt + strlen(p.dir) + 1, '/')) abort();
    if (st != NNDL_OK && !err.msg[0]) abort();
    free(cfg);
    return 0;
}
