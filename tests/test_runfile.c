/* Read a run file made by a real `mpirun -np 2 nndl-train` (tests/runfile.sh makes it, with
 * --sizes 784,20,10 --epochs 3) and check every documented group, dataset, shape and attribute,
 * and that the values mean what they claim: the last weight snapshot is the model, the probe
 * activations are the model's hidden layer on the probe images. Env: NNDL_RUNFILE, NNDL_TEST_DATA.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nndl/data.h"
#include "nndl/net.h"

static hid_t f = -1;
static const int sizes[] = {784, 20, 10};

static void open_run(void)
{
    const char *path = getenv("NNDL_RUNFILE");
    cr_assert(path != NULL, "set NNDL_RUNFILE");
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", path);
}
static void close_run(void) { H5Fclose(f); }

static int shape(const char *name, hsize_t *dims)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    cr_assert(d >= 0, "dataset %s is missing", name);
    hid_t sp = H5Dget_space(d);
    int r = H5Sget_simple_extent_ndims(sp);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    return r;
}

static void expect_shape(const char *name, int rank, hsize_t a, hsize_t b, hsize_t c)
{
    hsize_t d[8], want[3] = {a, b, c};
    int r = shape(name, d);
    cr_expect(eq(int, r, rank), "%s has rank %d, expected %d", name, r, rank);
    for (int i = 0; i < rank && i < r; i++) cr_expect(eq(u64, d[i], want[i]), "%s dim %d", name, i);
}

static void *read_all(const char *name, hid_t type, size_t elem)
{
    hsize_t d[8], n = 1;
    int r = shape(name, d);
    for (int i = 0; i < r; i++) n *= d[i];
    void *buf = malloc(elem * n);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    cr_assert(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "read %s", name);
    H5Dclose(ds);
    return buf;
}

static char *str_attr(hid_t loc, const char *name)
{
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    cr_assert(a >= 0, "attribute %s is missing", name);
    hid_t t = H5Aget_type(a);
    cr_assert(eq(int, H5Tis_variable_str(t), 0), "%s: fixed-length string expected", name);
    size_t n = H5Tget_size(t);
    char *s = calloc(n + 1, 1);
    H5Aread(a, t, s);
    H5Tclose(t);
    H5Aclose(a);
    return s;
}

static long long int_attr(hid_t loc, const char *name)
{
    long long v = -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    cr_assert(a >= 0, "attribute %s is missing", name);
    H5Aread(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    return v;
}

static double dbl_attr(hid_t loc, const char *name)
{
    double v = NAN;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    cr_assert(a >= 0, "attribute %s is missing", name);
    H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    return v;
}

TestSuite(runfile, .init = open_run, .fini = close_run);

Test(runfile, root_attributes)
{
    cr_expect(eq(i64, int_attr(f, "nndl_format_version"), 2));
    cr_expect(eq(i64, int_attr(f, "mpi_world_size"), 2));
    char *cfg = str_attr(f, "config");
    cJSON *j = cJSON_Parse(cfg);
    cr_assert(j != NULL, "config is JSON: %s", cfg);
    cJSON *sz = cJSON_GetObjectItem(j, "sizes");
    cr_expect(eq(int, cJSON_GetArraySize(sz), 3));
    cr_expect(eq(int, cJSON_GetArrayItem(sz, 1)->valueint, 20));
    cr_expect(eq(dbl, cJSON_GetObjectItem(j, "eta")->valuedouble, 0.5));
    cr_expect(eq(int, cJSON_GetObjectItem(j, "batch")->valueint, 10));
    cr_expect(eq(int, cJSON_GetObjectItem(j, "epochs")->valueint, 3));
    const char *keys[] = {"cost",    "init",          "seed",          "act",
                          "dataset", "train-samples", "history-every", "probe"};
    for (int i = 0; i < 8; i++)
        cr_expect(cJSON_GetObjectItem(j, keys[i]) != NULL, "config key %s", keys[i]);
    cr_expect(eq(str, cJSON_GetObjectItem(j, "cost")->valuestring, "cross-entropy"));
    cJSON_Delete(j);
    char *sha = str_attr(f, "dataset_sha256");
    cr_expect(strstr(sha, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db") !=
                  NULL,
              "%s", sha);
    char *ds = str_attr(f, "dataset"), *status = str_attr(f, "status");
    cr_expect(eq(str, ds, "mnist"));
    cr_expect(eq(str, status, "completed"));
    char *names[] = {"command_line", "nndl_version", "host", "start_time", "companion_dir"};
    for (int i = 0; i < 5; i++) {
        char *v = str_attr(f, names[i]);
        cr_expect(gt(sz, strlen(v), 0), "%s is empty", names[i]);
        free(v);
    }
    free(cfg);
    free(sha);
    free(ds);
    free(status);
}

Test(runfile, model_metrics_best)
{
    for (int l = 0; l < 2; l++) {
        char n[64];
        snprintf(n, sizeof n, "/model/layer_%d/weights", l + 1);
        expect_shape(n, 2, sizes[l + 1], sizes[l], 0);
        snprintf(n, sizeof n, "/model/layer_%d/biases", l + 1);
        expect_shape(n, 1, sizes[l + 1], 0, 0);
        snprintf(n, sizeof n, "/best/layer_%d/weights", l + 1);
        expect_shape(n, 2, sizes[l + 1], sizes[l], 0);
    }
    const char *m[] = {"epoch",         "train_cost", "val_accuracy", "val_cost",
                       "learning_rate", "seconds",    "samples_per_s"};
    for (int i = 0; i < 7; i++) {
        char n[64];
        snprintf(n, sizeof n, "/metrics/%s", m[i]);
        expect_shape(n, 1, 3, 0, 0);
    }
    double *acc = read_all("/metrics/val_accuracy", H5T_NATIVE_DOUBLE, 8),
           *ep = read_all("/metrics/epoch", H5T_NATIVE_DOUBLE, 8);
    int best = 0;
    for (int e = 0; e < 3; e++) {
        cr_expect(eq(dbl, ep[e], e + 1.0));
        cr_expect(gt(dbl, acc[e], 0.5), "val accuracy %g is a fraction that learned", acc[e]);
        cr_expect(le(dbl, acc[e], 1.0));
        best = acc[e] > acc[best] ? e : best;
    }
    hid_t g = H5Gopen2(f, "/best", H5P_DEFAULT);
    cr_expect(eq(i64, int_attr(g, "epoch"), best + 1));
    cr_expect(eq(dbl, dbl_attr(g, "val_accuracy"), acc[best]));
    double t = dbl_attr(g, "test_accuracy");
    cr_expect(gt(dbl, t, 0.5));
    H5Gclose(g);
    free(acc);
    free(ep);
}

Test(runfile, history_ends_with_the_model)
{
    expect_shape("/history/epoch", 1, 4, 0, 0);
    int *e = read_all("/history/epoch", H5T_NATIVE_INT, 4);
    for (int i = 0; i < 4; i++) cr_expect(eq(int, e[i], i), "snapshot %d is epoch %d", i, e[i]);
    expect_shape("/history/layer_1/weights", 3, 4, 20, 784);
    expect_shape("/history/layer_2/biases", 2, 4, 10, 0);
    float *h = read_all("/history/layer_1/weights", H5T_NATIVE_FLOAT, 4),
          *w = read_all("/model/layer_1/weights", H5T_NATIVE_FLOAT, 4);
    size_t n = 20 * 784, same = 0, moved = 0;
    for (size_t i = 0; i < n; i++) {
        same += h[3 * n + i] == w[i];
        moved += h[i] != w[i];
    }
    cr_expect(eq(sz, same, n), "the last snapshot is the final model");
    cr_expect(gt(sz, moved, n / 2),
              "the first snapshot (epoch 0) is the initialisation, not the model");
    free(e);
    free(h);
    free(w);
}

Test(runfile, activations_are_the_hidden_layer_of_the_probes)
{
    expect_shape("/activations/epoch", 1, 4, 0, 0);
    expect_shape("/activations/indices", 1, 300, 0, 0);
    expect_shape("/activations/labels", 1, 300, 0, 0);
    expect_shape("/activations/layer_1", 3, 4, 300, 20);
    int *idx = read_all("/activations/indices", H5T_NATIVE_INT, 4);
    uint8_t *lab = read_all("/activations/labels", H5T_NATIVE_UINT8, 1);
    float *act = read_all("/activations/layer_1", H5T_NATIVE_FLOAT, 4);
    /* recompute: MNIST rows idx through the final model's first layer */
    char pi[4200], pl[4200];
    nndl_images im;
    nndl_err err;
    nndl_data_find(pi, sizeof pi, getenv("NNDL_TEST_DATA"), "train-images-idx3-ubyte");
    nndl_data_find(pl, sizeof pl, getenv("NNDL_TEST_DATA"), "train-labels-idx1-ubyte");
    cr_assert(eq(int, nndl_images_load(&im, pi, pl, 10, "", &err), NNDL_OK), "%s", err.msg);
    cr_expect(eq(int, idx[0], 50000), "probes are the first validation images");
    nndl_net *net;
    nndl_net_create(&net, sizes, 3, NULL, NNDL_COST_CROSS_ENTROPY, &err);
    nndl_net_reserve(net, 300, &err);
    float *w = read_all("/model/layer_1/weights", H5T_NATIVE_FLOAT, 4),
          *b = read_all("/model/layer_1/biases", H5T_NATIVE_FLOAT, 4);
    memcpy(net->layer[0].w, w, sizeof(float) * 20 * 784);
    memcpy(net->layer[0].b, b, sizeof(float) * 20);
    float *x = malloc(sizeof(float) * 300 * 784);
    for (int r = 0; r < 300; r++) {
        cr_expect(eq(u8, lab[r], im.labels[idx[r]]));
        for (int k = 0; k < 784; k++) x[r * 784 + k] = im.pixels[(size_t)idx[r] * 784 + k] / 255.0f;
    }
    nndl_net_forward(net, x, 300);
    double maxdiff = 0;
    for (int i = 0; i < 300 * 20; i++)
        maxdiff = fmax(maxdiff, fabs(net->a[1][i] - act[3 * 300 * 20 + i]));
    cr_expect(lt(dbl, maxdiff, 1e-5), "stored activations differ from the model's by %g", maxdiff);
    free(idx);
    free(lab);
    free(act);
    free(w);
    free(b);
    free(x);
    nndl_net_free(net);
    nndl_images_free(&im);
}

Test(runfile, checkpoint_link)
{
    hid_t g = H5Gopen2(f, "/checkpoint", H5P_DEFAULT);
    cr_assert(g >= 0, "/checkpoint opens through its external link");
    cr_expect(eq(i64, int_attr(g, "epoch"), 3));
    cr_expect(eq(i64, int_attr(g, "step"), 0));
    H5Gclose(g);
    expect_shape("/checkpoint/model/layer_1/weights", 2, 20, 784, 0);
}
