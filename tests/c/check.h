/* check.h — the few assertions the C tests need. A failed CHECK prints where and counts; main
 * returns the count, so CTest sees the failure. */
#ifndef OX_CHECK_H
#define OX_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int check_failures;

#define CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++; \
        } \
    } while (0)
#define CHECK_EQ_INT(a, b) \
    do { \
        long long a_ = (long long)(a), b_ = (long long)(b); \
        if (a_ != b_) { \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_, b_); \
            check_failures++; \
        } \
    } while (0)
#define CHECK_STR(a, b) \
    do { \
        const char *a_ = (a), *b_ = (b); \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) { \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, a_ ? a_ : "(null)", \
                    b_ ? b_ : "(null)"); \
            check_failures++; \
        } \
    } while (0)

#define CHECK_DONE() (check_failures ? (fprintf(stderr, "%d check(s) failed\n", check_failures), 1) : 0)

/* A fresh folder <$OX_TEST_TMP or /tmp>/<name>-XXXXXX into root[n] (CTest sets OX_TEST_TMP to a
 * folder of the build tree); /tmp when that fails. Exits when neither can be made. */
static inline void check_tmp_dir(char *root, size_t n, const char *name) {
    const char *base = getenv("OX_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    mkdir(base, 0777);
    snprintf(root, n, "%s/%s-XXXXXX", base, name);
    if (mkdtemp(root)) return;
    snprintf(root, n, "/tmp/%s-XXXXXX", name);
    if (mkdtemp(root)) return;
    perror("mkdtemp");
    exit(1);
}

#endif
