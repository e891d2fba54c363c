/* libFuzzer harness: the IDX reader (raw and gzip) on an image file and a label file.
 * Input: [4 bytes: where the image file ends, little-endian, taken modulo the
 * size][images][labels]. A success must describe data that is really there: counts agree, labels <
 * 10, every pixel readable. */
#include "fuzz_util.h"
#include "nndl/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    uint32_t cut;
    memcpy(&cut, data, 4);
    data += 4;
    size -= 4;
    cut = size ? cut % (uint32_t)(size + 1) : 0;
    char ip[300], lp[300];
    snprintf(ip, sizeof ip, "%s/images", fuzz_dir());
    snprintf(lp, sizeof lp, "%s/labels", fuzz_dir());
    fuzz_write(ip, data, cut);
    fuzz_write(lp, data + cut, size - cut);
    nndl_images im;
    nndl_err err = {0};
    if (nndl_images_load(&im, ip, lp, 10, "(fuzz)", &err) == NNDL_OK) {
        unsigned sum = 0;
        size_t px = (size_t)im.n * im.rows * im.cols;
        if (im.n < 0 || im.rows < 1 || im.cols < 1) abort();
        for (size_t i = 0; i < px; i++) sum += im.pixels[i];
        for (int i = 0; i < im.n; i++)
            if (im.labels[i] >= 10) abort();
        nndl_images_free(&im);
        (void)sum;
    } else if (!err.msg[0]) {
        abort(); /* every failure names its reason */
    }
    return 0;
}
