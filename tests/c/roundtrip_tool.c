/* roundtrip_tool.c — reads an ONNX model with ox_model_read_file and writes it back with
 * ox_model_write_buffer to stdout, for tests/python/test_reader_roundtrip.py (built by CMake as
 * ox_roundtrip, not a CTest test).
 *
 *     ox_roundtrip model.onnx > out.onnx
 *
 * Exit 0 and the bytes on stdout; 2 when the reader refuses the model as unsupported, 3 when it
 * fails otherwise, 4 when writing fails; the error on stderr. On success stderr gets one line of
 * what the reader dropped: "dropped: <field>; <field>" (empty list: "dropped:"). */
#include <stdio.h>
#include <stdlib.h>

#include "onnx/write.h"
#include "onnx/read.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s model.onnx\n", argv[0]);
        return 64;
    }
    ox_graph *g = NULL;
    ox_read_info *info = NULL;
    ox_error err = {0};
    ox_read_options ro = {.allow_external_data = true};
    if (ox_model_read_file(argv[1], &ro, &g, &info, &err) != OX_OK) {
        fprintf(stderr, "%s: %s (at %s)\n", ox_code_name(err.code), err.msg, err.where);
        return err.code == OX_EUNSUPPORTED ? 2 : 3;
    }
    ox_save_options o = {.include_initializers = true,
                         .keep_initializers_as_inputs = info->keep_initializers_as_inputs,
                         .producer_name = info->producer_name ? info->producer_name : "",
                         .producer_version = info->producer_version};
    int rc = 0;
    size_t n = ox_model_size(g, &o), written = 0;
    void *buf = malloc(n ? n : 1);
    if (!buf || ox_model_write_buffer(g, &o, buf, n, &written, &err) != OX_OK) {
        fprintf(stderr, "write: %s (at %s)\n", buf ? err.msg : "out of memory", err.where);
        rc = 4;
    } else if (fwrite(buf, 1, written, stdout) != written || fflush(stdout) != 0) {
        rc = 4;
    }
    if (!rc) {
        fprintf(stderr, "dropped:");
        for (uint32_t i = 0; i < info->ndropped; i++) fprintf(stderr, "%s%s", i ? "; " : " ", info->dropped[i]);
        fprintf(stderr, "\n");
    }
    free(buf);
    ox_graph_free(g);
    ox_read_info_free(info);
    return rc;
}
