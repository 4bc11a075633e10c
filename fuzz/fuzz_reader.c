/* fuzz_reader.c — libFuzzer target over the ONNX reader (src/onnx/read.h), the core's only reader
 * of untrusted bytes.
 *
 * Each input is read as a ModelProto (also with the metadata-only options oxport-inspect uses) and
 * as a FunctionProto. A model that reads is written back
 * with ox_model_write_buffer and read again: the writer's output must always be readable (a
 * failure there is a bug in one of the two, reported as a crash). External data is not allowed
 * here (no base folder): tests/c/test_proto_read.c covers those paths on real files.
 *
 * Build and run (clang, libFuzzer ships with it):
 *     cmake -S . -B build/fuzz -G Ninja -DOX_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *     ninja -C build/fuzz fuzz_reader
 *     build/fuzz/fuzz_reader -max_total_time=300 build/fuzz/corpus <onnx>/backend/test/data/node
 * or `ninja -C build/fuzz fuzz` (OX_FUZZ_SECONDS, default 600). The corpus found so far goes to
 * build/fuzz/corpus; the seed folder is only read.
 *
 * Replay: fuzz/replay.c runs this same entry point over every file below a folder without
 * libFuzzer; CTest runs it (test fuzz_reader_replay) over the ONNX backend node tests in the
 * ASan/UBSan build, so `make test` replays the corpus. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "opt/pass.h"
#include "onnx/write.h"
#include "onnx/read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ox_graph *g = NULL;
    ox_read_info *info = NULL;
    ox_error err = {0};
    if (ox_model_read(data, size, NULL, &g, &info, &err) == OX_OK) {
        ox_save_options o = {.include_initializers = true,
                             .keep_initializers_as_inputs = info->keep_initializers_as_inputs};
        size_t n = ox_model_size(g, &o);
        if (n) {
            void *buf = malloc(n);
            size_t written = 0;
            ox_error werr = {0};
            if (buf && ox_model_write_buffer(g, &o, buf, n, &written, &werr) == OX_OK) {
                ox_graph *g2 = NULL;
                ox_read_info *i2 = NULL;
                ox_error rerr = {0};
                if (ox_model_read(buf, written, NULL, &g2, &i2, &rerr) != OX_OK) {
                    fprintf(stderr, "the writer's output does not read back: %s (at %s)\n", rerr.msg, rerr.where);
                    abort();
                }
                ox_graph_free(g2);
                ox_read_info_free(i2);
            }
            free(buf);
        }
        ox_graph_free(g);
        ox_read_info_free(info);
    }
    /* the same bytes through the reader's options for inspecting (oxport-inspect): tensors without
     * their bytes, values defined nowhere accepted */
    ox_read_options meta = {.metadata_only = true, .allow_undefined_values = true};
    ox_graph *gm = NULL;
    ox_read_info *im = NULL;
    ox_error merr = {0};
    if (ox_model_read(data, size, &meta, &gm, &im, &merr) == OX_OK) {
        ox_graph_free(gm);
        ox_read_info_free(im);
    }
    /* and through the optimizer: passes meet graphs no exporter would make */
    ox_graph *go = NULL;
    ox_read_info *io = NULL;
    ox_error oerr = {0};
    if (ox_model_read(data, size, NULL, &go, &io, &oerr) == OX_OK) {
        /* the passes take graphs as lowering makes them: every node output present (the reader
         * leaves an omitted optional output NULL) */
        bool whole = true;
        for (uint32_t i = 0; i < go->nnodes && whole; i++)
            for (int k = 0; k < go->nodes[i]->noutputs; k++) whole &= go->nodes[i]->outputs[k] != NULL;
        if (whole) (void)ox_optimize(go, NULL);
        ox_graph_free(go);
        ox_read_info_free(io);
    }
    ox_function *f = NULL;
    ox_error ferr = {0};
    if (ox_function_read(data, size, &f, &ferr) == OX_OK) ox_function_free(f);
    return 0;
}
