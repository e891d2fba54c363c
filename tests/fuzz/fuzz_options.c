/* libFuzzer harness: nndl-train's command line and, on resume, the stored configuration JSON it is
 * merged with. Input: lines; each line up to a line "%%" is one argv entry, the rest is the stored
 * JSON (as a run file's manifest holds it). Parsing must never crash, and a failure must say why.
 */
#include "fuzz_util.h"
#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    char *argv[66] = {"nndl-train"}, *json = NULL;
    int argc = 1;
    for (char *line = text, *next; line && argc < 64; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        if (!strcmp(line, "%%")) {
            json = next;
            break;
        }
        argv[argc++] = line;
    }
    argv[argc] = NULL;
    nndl_options o;
    nndl_err err = {0};
    nndl_status st = nndl_options_parse(&o, argc, argv, &err);
    if (st == NNDL_OK && json) st = nndl_options_merge_stored(&o, json, "fuzz.h5", &err);
    if (st == NNDL_OK) st = nndl_options_check(&o, &err);
    if (st == NNDL_OK) {
        /* and what it stores parses back to the same settings */
        cJSON *j = nndl_options_to_json(&o);
        char *s = cJSON_PrintUnformatted(j);
        nndl_options o2;
        char *argv2[] = {"nndl-train", NULL};
        if (!s || nndl_options_parse(&o2, 1, argv2, &err) != NNDL_OK) abort();
        if (nndl_options_merge_stored(&o2, s, "fuzz.h5", &err) != NNDL_OK) {
            fprintf(stderr, "stored configuration does not merge back: %s\n%s\n", err.msg, s);
            abort();
        }
        cJSON *j2 = nndl_options_to_json(&o2);
        cJSON_DeleteItemFromObject(j, "epochs");
        cJSON_DeleteItemFromObject(j2, "epochs");
        if (!cJSON_Compare(j, j2, 1)) {
            char *s2 = cJSON_PrintUnformatted(j2);
            fprintf(stderr, "round trip differs:\n%s\n%s\n", s, s2);
            abort();
        }
        free(s);
        cJSON_Delete(j);
        cJSON_Delete(j2);
    } else if (!err.msg[0]) {
        abort();
    }
    free(text);
    return 0;
}
