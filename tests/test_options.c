/* nndl-train's flag parser: defaults are the book's chapter-1 network; bad values name the flag. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "options.h"

static nndl_status parse(nndl_options *o, nndl_err *err, int argc, char **argv)
{
    return nndl_options_parse(o, argc, argv, err);
}
#define PARSE(o, err, ...)                                                                         \
    parse(o, err, sizeof((char *[]){(char *)"nndl-train", __VA_ARGS__}) / sizeof(char *),          \
          (char *[]){(char *)"nndl-train", __VA_ARGS__})

Test(options, defaults_are_chapter_one)
{
    nndl_options o;
    nndl_err err;
    char *argv[] = {(char *)"nndl-train"};
    cr_assert(eq(int, nndl_options_parse(&o, 1, argv, &err), NNDL_OK));
    cr_expect(eq(int, o.cfg.n_sizes, 3));
    cr_expect(eq(int, o.cfg.sizes[1], 30));
    cr_expect(eq(dbl, o.cfg.eta, 3.0));
    cr_expect(eq(int, o.cfg.batch, 10));
    cr_expect(eq(int, o.cfg.epochs, 30));
    cr_expect(eq(int, o.cfg.cost, NNDL_COST_QUADRATIC));
    cr_expect(eq(int, o.cfg.init, NNDL_INIT_STANDARD));
    cr_expect(eq(str, (char *)nndl_datasets[o.dataset], "mnist"));
}

Test(options, all_flags_parse)
{
    nndl_options o;
    nndl_err err;
    nndl_status st =
        PARSE(&o, &err, "--sizes", "784,100,50,10", "--eta", "0.5", "--batch", "32", "--epochs",
              "3", "--cost", "cross-entropy", "--init", "nielsen", "--seed", "18446744", "--data",
              "/x", "--dataset", "fashion-mnist", "--log", "-", "--train-samples", "2000",
              "--val-samples", "500", "--val-split", "random", "--no-shuffle", "--threads", "2");
    cr_assert(eq(int, st, NNDL_OK), "%s", err.msg);
    cr_expect(eq(int, o.cfg.n_sizes, 4));
    cr_expect(eq(int, o.cfg.sizes[2], 50));
    cr_expect(eq(dbl, o.cfg.eta, 0.5));
    cr_expect(eq(int, o.cfg.batch, 32));
    cr_expect(eq(int, o.cfg.cost, NNDL_COST_CROSS_ENTROPY));
    cr_expect(eq(int, o.cfg.init, NNDL_INIT_NIELSEN));
    cr_expect(eq(u64, o.cfg.seed, 18446744));
    cr_expect(eq(str, o.data_dir, "/x"));
    cr_expect(eq(str, (char *)nndl_datasets[o.dataset], "fashion-mnist"));
    cr_expect(eq(int, o.train_samples, 2000));
    cr_expect(eq(int, o.val_samples, 500));
    cr_expect(eq(int, o.val_random, 1));
    cr_expect(eq(int, o.cfg.shuffle, 0));
    cr_expect(eq(int, o.threads, 2));
}

#define BAD(want, ...)                                                                             \
    do {                                                                                           \
        nndl_options o;                                                                            \
        nndl_err err;                                                                              \
        cr_expect(eq(int, PARSE(&o, &err, __VA_ARGS__), NNDL_EARG));                               \
        cr_expect(strstr(err.msg, want) != NULL, "message '%s' should say '%s'", err.msg, want);   \
    } while (0)

Test(options, bad_values_name_the_flag)
{
    BAD("unknown flag '--bogus'", "--bogus");
    BAD("--eta: expected a learning rate > 0, found '0'", "--eta", "0");
    BAD("--eta: expected a learning rate > 0, found '-1'", "--eta", "-1");
    BAD("--eta: expected a learning rate > 0, found 'nan'", "--eta", "nan");
    BAD("--eta: expected a learning rate > 0, found '3x'", "--eta", "3x");
    BAD("--batch: expected a whole number from 1", "--batch", "0");
    BAD("--epochs: expected a whole number from 1", "--epochs", "-2");
    BAD("--sizes: expected positive whole numbers", "--sizes", "784,,10");
    BAD("--sizes: expected positive whole numbers", "--sizes", "784,0,10");
    BAD("--sizes: expected at least 2 values", "--sizes", "784");
    BAD("ends with a comma", "--sizes", "784,30,");
    BAD("--cost: expected quadratic, cross-entropy or log-likelihood, found 'mse'", "--cost",
        "mse");
    BAD("--init: expected standard, nielsen or network3", "--init", "xavier");
    BAD("--dataset: expected mnist or fashion-mnist", "--dataset", "cifar");
    BAD("--seed: expected a whole number", "--seed", "-1");
    BAD("--eta needs a value", "--eta");
    BAD("unexpected argument 'extra'", "extra");
    /* --layers: each bad token named (the geometry's own errors come from the net: test_conv) */
    BAD("--layers: 'maxpool:2x2' is not conv:FxKxK, pool:PxP or dense:N", "--layers",
        "maxpool:2x2,dense:10");
    BAD("--layers: pool:2x2 must come right after a conv token", "--layers",
        "dense:30,pool:2x2,dense:10");
    BAD("--layers: conv:0x5x5: expected F filters", "--layers", "conv:0x5x5,dense:10");
    BAD("--layers: conv:20x5x3: expected F filters (1 to 4096) of a square KxK kernel", "--layers",
        "conv:20x5x3,dense:10");
    BAD("--layers: dense:0: expected 1 to 16777216 units", "--layers", "conv:20x5x5,dense:0");
    BAD("must end with the output layer, dense:10", "--layers", "conv:20x5x5,pool:2x2");
    BAD("--sizes with --layers: both give the net", "--sizes", "784,30,10", "--layers",
        "dense:30,dense:10");
}

/* The stored configuration round-trips: options -> JSON -> a resumed run's options -> the same
 * JSON, for the defaults and for every flag set. */
static void round_trip(int argc, char **argv)
{
    nndl_options a, b;
    nndl_err err;
    char *argv0[] = {(char *)"nndl-train"};
    cr_assert(eq(int, nndl_options_parse(&a, argc, argv, &err), NNDL_OK), "%s", err.msg);
    cJSON *ja = nndl_options_to_json(&a);
    char *sa = cJSON_PrintUnformatted(ja);
    cr_assert(eq(int, nndl_options_parse(&b, 1, argv0, &err), NNDL_OK));
    cr_assert(eq(int, nndl_options_merge_stored(&b, sa, "run.h5", &err), NNDL_OK), "%s", err.msg);
    cJSON *jb = nndl_options_to_json(&b);
    char *sb = cJSON_PrintUnformatted(jb);
    cr_expect(eq(str, sa, sb));
    free(sa);
    free(sb);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
}

Test(options, stored_configuration_round_trips)
{
    char *defaults[] = {(char *)"nndl-train"};
    round_trip(1, defaults);
    char *all[] = {(char *)"nndl-train",
                   (char *)"--sizes",
                   (char *)"784,100,50,10",
                   (char *)"--eta",
                   (char *)"0.37",
                   (char *)"--batch",
                   (char *)"32",
                   (char *)"--epochs",
                   (char *)"7",
                   (char *)"--cost",
                   (char *)"log-likelihood",
                   (char *)"--init",
                   (char *)"nielsen",
                   (char *)"--seed",
                   (char *)"12345",
                   (char *)"--no-shuffle",
                   (char *)"--dataset",
                   (char *)"fashion-mnist",
                   (char *)"--train-samples",
                   (char *)"1234",
                   (char *)"--val-samples",
                   (char *)"999",
                   (char *)"--val-split",
                   (char *)"random",
                   (char *)"--checkpoint-every",
                   (char *)"3",
                   (char *)"--checkpoint-every-steps",
                   (char *)"77",
                   (char *)"--keep",
                   (char *)"4",
                   (char *)"--history-every",
                   (char *)"2",
                   (char *)"--probe",
                   (char *)"55",
                   (char *)"--probe-layers",
                   (char *)"1,2",
                   (char *)"--compress",
                   (char *)"6",
                   (char *)"--init-from",
                   (char *)"w.h5",
                   (char *)"--data",
                   (char *)"/nonexistent/dir"};
    round_trip(sizeof all / sizeof *all, all);
    char *conv[] = {(char *)"nndl-train",
                    (char *)"--layers",
                    (char *)"conv:20x5x5,pool:2x2,conv:40x5x5,pool:2x2,dense:100,dense:10",
                    (char *)"--act",
                    (char *)"relu",
                    (char *)"--cost",
                    (char *)"log-likelihood",
                    (char *)"--init",
                    (char *)"network3",
                    (char *)"--probe-conv",
                    (char *)"4"};
    round_trip(sizeof conv / sizeof *conv, conv);
}
