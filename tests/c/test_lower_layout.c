/* The lowering's layout, read from the sources: every row of lower.def names a family, each family
 * has one file, src/lower/<family>.c, and that file defines exactly the functions its rows name.
 * Fails when a row's function is defined outside its family's file (or twice, or nowhere), when a
 * family file defines a lowering function (`int name(ox_lower *L)` at file scope) that no row of
 * its family names, when a row names a family with no file, when one function serves rows of two
 * families, or when src/lower/ holds a .c file that is neither lower.c nor a family.
 * OX_SOURCE_DIR (set by CMake) is the source tree. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lower/lower.h"

#ifndef OX_SOURCE_DIR
#error "OX_SOURCE_DIR must name the source tree (CMakeLists.txt sets it)"
#endif

typedef struct row {
    const char *family, *target, *fn; /* fn NULL: an OX_UNARY row, lowered by lower.c */
} row;

static const row rows[] = {
#define OX_ATEN(family, target, fn) {#family, target, #fn},
#define OX_UNARY(family, target, onnx_op) {#family, target, NULL},
#include "lower/lower.def"
};
enum { NROWS = sizeof rows / sizeof rows[0], MAX_FILES = 64, MAX_DEFS = 512 };

/* A lowering function defined in a file. */
typedef struct def {
    char name[96];
    char file[64];
} def;

static def defs[MAX_DEFS];
static int ndefs;

static bool is_family(const char *name) {
    for (int i = 0; i < NROWS; i++)
        if (!strcmp(rows[i].family, name)) return true;
    return false;
}

/* The non-static file-scope definitions `int NAME(ox_lower *L) {` of one file, one per line at
 * column 0 (the style every lowering follows; a prototype ends with ';' and is not one). */
static void scan(const char *dir, const char *file) {
    char path[512], line[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "int ", 4)) continue;
        const char *p = line + 4, *q = p;
        while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '_') q++;
        if (q == p || strncmp(q, "(ox_lower *L)", 13)) continue;
        const char *r = q + 13;
        while (*r == ' ') r++;
        if (*r != '{') continue;
        CHECK(ndefs < MAX_DEFS);
        if (ndefs >= MAX_DEFS) break;
        def *d = &defs[ndefs++];
        snprintf(d->name, sizeof d->name, "%.*s", (int)(q - p), p);
        snprintf(d->file, sizeof d->file, "%s", file);
    }
    fclose(f);
}

int main(void) {
    const char *dir = OX_SOURCE_DIR "/src/lower";
    DIR *dp = opendir(dir);
    CHECK(dp != NULL);
    if (!dp) return CHECK_DONE();
    char files[MAX_FILES][64];
    int nfiles = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        size_t n = strlen(e->d_name);
        if (n < 3 || strcmp(e->d_name + n - 2, ".c")) continue;
        CHECK(nfiles < MAX_FILES && n < sizeof files[0]);
        if (nfiles >= MAX_FILES || n >= sizeof files[0]) break;
        memcpy(files[nfiles++], e->d_name, n + 1);
    }
    closedir(dp);

    /* Every .c file is lower.c (the driver and the helpers) or a family's file. */
    for (int i = 0; i < nfiles; i++) {
        char family[64];
        snprintf(family, sizeof family, "%.*s", (int)strlen(files[i]) - 2, files[i]);
        if (strcmp(files[i], "lower.c") && !is_family(family))
            fprintf(stderr, "src/lower/%s is neither lower.c nor a family of lower.def\n", files[i]), check_failures++;
        scan(dir, files[i]);
    }

    /* Every family a row names has its file. */
    int nfamilies = 0;
    for (int i = 0; i < NROWS; i++) {
        bool first = true;
        for (int j = 0; j < i; j++) first &= strcmp(rows[j].family, rows[i].family) != 0;
        if (!first) continue;
        nfamilies++;
        char file[64];
        snprintf(file, sizeof file, "%s.c", rows[i].family);
        bool found = false;
        for (int k = 0; k < nfiles; k++) found |= !strcmp(files[k], file);
        if (!found)
            fprintf(stderr, "family %s (row %s) has no file src/lower/%s\n", rows[i].family, rows[i].target, file),
                check_failures++;
    }

    /* Every row's function is defined once, in its family's file, and serves one family. */
    for (int i = 0; i < NROWS; i++) {
        if (!rows[i].fn) continue;
        char file[64];
        snprintf(file, sizeof file, "%s.c", rows[i].family);
        int count = 0;
        for (int k = 0; k < ndefs; k++) {
            if (strcmp(defs[k].name, rows[i].fn)) continue;
            count++;
            if (strcmp(defs[k].file, file))
                fprintf(stderr, "%s (row %s, family %s) is defined in src/lower/%s, not %s\n", rows[i].fn,
                        rows[i].target, rows[i].family, defs[k].file, file),
                    check_failures++;
        }
        if (count != 1)
            fprintf(stderr, "%s (row %s) is defined %d times in src/lower/, expected once\n", rows[i].fn,
                    rows[i].target, count),
                check_failures++;
        for (int j = 0; j < i; j++)
            if (rows[j].fn && !strcmp(rows[j].fn, rows[i].fn) && strcmp(rows[j].family, rows[i].family))
                fprintf(stderr, "%s serves rows of two families: %s (%s) and %s (%s)\n", rows[i].fn, rows[j].target,
                        rows[j].family, rows[i].target, rows[i].family),
                    check_failures++;
    }

    /* Every lowering function a file defines is named by a row of the file's family. */
    for (int k = 0; k < ndefs; k++) {
        bool named = false;
        for (int i = 0; i < NROWS && !named; i++) {
            if (!rows[i].fn || strcmp(rows[i].fn, defs[k].name)) continue;
            char file[64];
            snprintf(file, sizeof file, "%s.c", rows[i].family);
            named = !strcmp(file, defs[k].file);
        }
        if (!named)
            fprintf(stderr, "src/lower/%s defines %s, which no row of its family names\n", defs[k].file, defs[k].name),
                check_failures++;
    }

    /* The table the test read is the one the core serves. */
    int served = 0;
    while (ox_lower_target(served, NULL, NULL)) served++;
    CHECK_EQ_INT(served, NROWS);
    CHECK(nfamilies >= 20 && ndefs > 200);
    fprintf(stderr, "%d rows, %d families, %d files, %d lowering functions\n", NROWS, nfamilies, nfiles, ndefs);
    return CHECK_DONE();
}
