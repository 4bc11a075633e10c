/* replay.c — runs the fuzz entry point (fuzz_reader.c) over every regular file below the folders
 * given, without libFuzzer, as SQLite's fuzzcheck replays its corpus: CTest runs it in the
 * ASan/UBSan build over the ONNX backend node tests (models and their .pb tensors).
 *
 *     fuzz_reader_replay <folder>...      exit 0, 1 when a file cannot be read from disk,
 *                                         77 (CTest: skipped) when no folder is given or exists */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long files;
static int failures;

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)ftw;
    if (type != FTW_F || !S_ISREG(st->st_mode)) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        failures++;
        return 0;
    }
    size_t n = (size_t)st->st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        fprintf(stderr, "cannot read %s\n", path);
        failures++;
    } else {
        LLVMFuzzerTestOneInput(buf, n);
        files++;
    }
    free(buf);
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    int folders = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) continue;
        folders++;
        if (nftw(argv[i], visit, 16, FTW_PHYS) != 0) {
            perror(argv[i]);
            failures++;
        }
    }
    if (!folders) {
        fprintf(stderr,
                "fuzz_reader_replay: skipped: no corpus folder found (is onnx installed in "
                ".venv? its wheel carries onnx/backend/test/data/node)\n");
        return 77;
    }
    printf("replayed %lu files\n", files);
    return failures ? 1 : 0;
}
