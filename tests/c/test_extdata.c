/* test_extdata.c — external data (onnx/extdata.h) on its own: the writer's layout arithmetic at
 * every threshold and at the 64-bit edge, the location rules as strings, offset/length parsing and
 * range checks with overflowing values, and ox_extdata_open on a real tree: absolute paths, "..",
 * symbolic links out of the folder (file and directory), links that stay inside, non-regular
 * files (a FIFO refused without blocking, as location and as model path), and a symbolic link met while opening (the O_NOFOLLOW step, with a folder descriptor that
 * no longer matches its path, as when the tree changes under the reader). Run by CTest under
 * ASan/UBSan; the reader's use of all this is tested through models in test_proto_read.c. */
#include "onnx/extdata.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

/* ---- layout ---- */

static void test_align(void) {
    CHECK_EQ_INT(ox_extdata_align(0), 16);
    CHECK_EQ_INT(ox_extdata_align(1), 16);
    CHECK_EQ_INT(ox_extdata_align((1u << 20) - 1), 16);
    CHECK_EQ_INT(ox_extdata_align(1u << 20), 64 << 10);
    CHECK_EQ_INT(ox_extdata_align(SIZE_MAX), 64 << 10);
    CHECK_EQ_INT(OX_EXTERNAL_BIG_BYTES, 1 << 20);
    CHECK_EQ_INT(OX_EXTERNAL_MIN_BYTES_DEFAULT, 1024);
    /* both alignments are powers of two, the big one a multiple of the page size of every
     * platform oxport runs on (4 KiB, 16 KiB, 64 KiB) */
    CHECK((OX_EXTERNAL_ALIGN_BIG & (OX_EXTERNAL_ALIGN_BIG - 1)) == 0);
    CHECK((OX_EXTERNAL_ALIGN_SMALL & (OX_EXTERNAL_ALIGN_SMALL - 1)) == 0);
    CHECK(OX_EXTERNAL_ALIGN_BIG % (uint64_t)sysconf(_SC_PAGESIZE) == 0);
}

static void test_place(void) {
    uint64_t off = 12345;
    CHECK(ox_extdata_place(0, 10, &off));
    CHECK_EQ_INT(off, 0);
    CHECK(ox_extdata_place(1, 10, &off));
    CHECK_EQ_INT(off, 16);
    CHECK(ox_extdata_place(16, 10, &off));
    CHECK_EQ_INT(off, 16);
    CHECK(ox_extdata_place(17, 0, &off)); /* an empty tensor is placed like a small one */
    CHECK_EQ_INT(off, 32);
    CHECK(ox_extdata_place(17, (1u << 20) - 1, &off));
    CHECK_EQ_INT(off, 32);
    CHECK(ox_extdata_place(17, 1u << 20, &off));
    CHECK_EQ_INT(off, 65536);
    CHECK(ox_extdata_place(65536, 1u << 20, &off));
    CHECK_EQ_INT(off, 65536);
    CHECK(ox_extdata_place(65537, 3u << 20, &off));
    CHECK_EQ_INT(off, 131072);

    /* A layout as the writer makes it: small, big, small, big. */
    size_t sizes[] = {1000, 1u << 20, 24, (1u << 20) + 3};
    uint64_t want[] = {0, 65536, 65536 + (1u << 20), 2 * 65536 + (1u << 20)};
    uint64_t end = 0;
    for (int i = 0; i < 4; i++) {
        CHECK(ox_extdata_place(end, sizes[i], &off));
        CHECK_EQ_INT(off, want[i]);
        end = off + sizes[i];
    }

    /* The 64-bit edge: the last offset that fits, then one byte too many. */
    uint64_t top = UINT64_MAX - 31; /* 2^64 - 32, a multiple of 16 */
    CHECK(ox_extdata_place(top, 16, &off));
    CHECK(off == top); /* ends at 2^64 - 16 */
    CHECK(ox_extdata_place(top, 31, &off)); /* ends at 2^64 - 1 */
    off = 7;
    CHECK(!ox_extdata_place(top, 32, &off)); /* would end at 2^64 */
    CHECK_EQ_INT(off, 7); /* untouched */
    CHECK(ox_extdata_place(top + 1, 15, &off)); /* rounds up to 2^64 - 16, ends at 2^64 - 1 */
    CHECK(off == UINT64_MAX - 15);
    CHECK(!ox_extdata_place(top + 1, 16, &off));
    CHECK(!ox_extdata_place(UINT64_MAX - 14, 0, &off)); /* rounding up alone reaches 2^64 */
    CHECK(!ox_extdata_place(UINT64_MAX, 0, &off));
    CHECK(!ox_extdata_place(UINT64_MAX - 65535 + 1, 1u << 20, &off));
    if (SIZE_MAX == UINT64_MAX) { /* the largest tensor: only at offset 0 */
        CHECK(ox_extdata_place(0, SIZE_MAX, &off));
        CHECK_EQ_INT(off, 0);
        CHECK(!ox_extdata_place(1, SIZE_MAX, &off));
    }
}

static void test_bare_name(void) {
    CHECK(ox_extdata_bare_name("model.onnx.data"));
    CHECK(ox_extdata_bare_name("..data"));
    CHECK(ox_extdata_bare_name("..."));
    CHECK(ox_extdata_bare_name("a\\b")); /* a file name on POSIX */
    CHECK(!ox_extdata_bare_name(NULL));
    CHECK(!ox_extdata_bare_name(""));
    CHECK(!ox_extdata_bare_name("."));
    CHECK(!ox_extdata_bare_name(".."));
    CHECK(!ox_extdata_bare_name("sub/w.bin"));
    CHECK(!ox_extdata_bare_name("/abs"));
    CHECK(!ox_extdata_bare_name("w.bin/"));
}

/* ---- locations, offsets, lengths ---- */

static void test_location_problem(void) {
    const char *fine[] = {"w.bin", "sub/w.bin", "./w.bin", "a/./b", "..w", "w..", "a/...", "a//b", "."};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        const char *why = ox_extdata_location_problem(fine[i]);
        if (why) fprintf(stderr, "'%s' refused: %s\n", fine[i], why);
        CHECK(why == NULL);
    }
    CHECK_STR(ox_extdata_location_problem(""), "it is empty");
    CHECK_STR(ox_extdata_location_problem("/etc/passwd"), "it is an absolute path");
    CHECK_STR(ox_extdata_location_problem("//x"), "it is an absolute path");
    CHECK_STR(ox_extdata_location_problem("a\\..\\b"), "it holds a backslash");
    CHECK_STR(ox_extdata_location_problem(".."), "it has a '..' component");
    CHECK_STR(ox_extdata_location_problem("../x"), "it has a '..' component");
    CHECK_STR(ox_extdata_location_problem("a/../b"), "it has a '..' component");
    CHECK_STR(ox_extdata_location_problem("a/.."), "it has a '..' component");
    CHECK_STR(ox_extdata_location_problem("a//../b"), "it has a '..' component");
}

static void test_parse_u64(void) {
    uint64_t v = 99;
    CHECK(ox_extdata_parse_u64("0", &v) && v == 0);
    CHECK(ox_extdata_parse_u64("007", &v) && v == 7);
    CHECK(ox_extdata_parse_u64("18446744073709551615", &v) && v == UINT64_MAX);
    v = 99;
    const char *bad[] = {"",   "18446744073709551616", "99999999999999999999", "-1", "+1", " 1", "1 ", "0x10", "1e3",
                         "1.0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(!ox_extdata_parse_u64(bad[i], &v));
        CHECK_EQ_INT(v, 99); /* untouched */
    }
}

static void test_check_range(void) {
    ox_error err = {0};
    uint64_t len = 0;
    CHECK_EQ_INT(ox_extdata_check_range(100, 0, true, 100, 100, &len, "w", "w.bin", &err, NULL), OX_OK);
    CHECK_EQ_INT(len, 100);
    CHECK_EQ_INT(ox_extdata_check_range(100, 84, true, 16, 16, &len, "w", "w.bin", &err, NULL), OX_OK);
    CHECK_EQ_INT(ox_extdata_check_range(100, 84, false, 0, 16, &len, "w", "w.bin", &err, NULL), OX_OK);
    CHECK_EQ_INT(len, 16); /* no length: to the end of the file */
    CHECK_EQ_INT(ox_extdata_check_range(100, 100, false, 0, 0, &len, "w", "w.bin", &err, NULL), OX_OK);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(ox_extdata_check_range(0, 0, true, 0, 0, &len, "w", "w.bin", &err, NULL), OX_OK);

    struct {
        size_t file;
        uint64_t off;
        bool has_len;
        uint64_t len;
        size_t nbytes;
        const char *msg;
    } bad[] = {
        {100, 101, true, 0, 0, "external data offset 101 is past the end of 'w.bin' (100 bytes)"},
        {100, UINT64_MAX, true, 1, 1, "is past the end"},
        {100, 90, true, 11, 11, "external data [90, +11) is past the end of 'w.bin' (100 bytes)"},
        {100, 1, true, UINT64_MAX, 16, "[1, +18446744073709551615) is past the end"}, /* off + len wraps */
        {100, 0, true, 16, 12, "external data length 16 in 'w.bin', its shape needs 12 bytes"},
        {100, 84, false, 0, 12, "length 16 in 'w.bin'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ox_error_clear(&err);
        len = 7;
        ox_code rc = ox_extdata_check_range(bad[i].file, bad[i].off, bad[i].has_len, bad[i].len, bad[i].nbytes, &len,
                                            "w", "w.bin", &err, "node 'n' (Add)");
        CHECK_EQ_INT(rc, OX_EFORMAT);
        CHECK_EQ_INT(len, 7);
        if (!strstr(err.msg, bad[i].msg)) fprintf(stderr, "case %zu: '%s'\n", i, err.msg);
        CHECK(strstr(err.msg, bad[i].msg) != NULL);
        CHECK(strncmp(err.msg, "tensor 'w': ", 12) == 0);
        CHECK_STR(err.where, "node 'n' (Add)");
    }
}

/* ---- files ---- */

static char root[512];

static const char *path(const char *name) {
    static char buf[4][700];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", root, name);
    return b;
}

static void write_file(const char *p, const char *text) {
    FILE *f = fopen(p, "wb");
    if (!f || fputs(text, f) < 0) {
        perror(p);
        exit(1);
    }
    fclose(f);
}

static void make_tree(void) {
    check_tmp_dir(root, sizeof root, "extdata");
    /* model/            the base folder
     *   w.bin, sub/w.bin, sub/deeper/w.bin
     *   in_link -> w.bin, sub_link -> sub           (stay inside: allowed)
     *   out_link -> ../outside/secret.bin           (a file outside)
     *   out_dir -> ../outside                       (a folder outside)
     *   abs_link -> <root>/outside/secret.bin
     *   self -> .                                   (the folder itself)
     *   prefix_link -> ../model2/secret.bin         (outside, though its path starts as model's)
     * outside/secret.bin, model2/secret.bin
     * model_link -> model                           (a base folder given through a link)
     * swapped/          a look-alike of model whose entries are links (see test_nofollow) */
    mkdir(path("model"), 0777);
    mkdir(path("model/sub"), 0777);
    mkdir(path("model/sub/deeper"), 0777);
    mkdir(path("outside"), 0777);
    mkdir(path("model2"), 0777);
    mkdir(path("swapped"), 0777);
    write_file(path("model/w.bin"), "model bytes.....");
    write_file(path("model/sub/w.bin"), "sub bytes.......");
    write_file(path("model/sub/deeper/w.bin"), "deeper bytes....");
    write_file(path("outside/secret.bin"), "secret bytes....");
    write_file(path("model2/secret.bin"), "secret bytes....");
    int rc = 0;
    rc |= symlink("w.bin", path("model/in_link"));
    rc |= symlink("sub", path("model/sub_link"));
    rc |= symlink("../outside/secret.bin", path("model/out_link"));
    rc |= symlink("../outside", path("model/out_dir"));
    rc |= symlink(path("outside/secret.bin"), path("model/abs_link"));
    rc |= symlink(".", path("model/self"));
    rc |= symlink("../model2/secret.bin", path("model/prefix_link"));
    rc |= symlink("model", path("model_link"));
    rc |= symlink(path("outside/secret.bin"), path("swapped/w.bin"));
    rc |= symlink(path("outside"), path("swapped/sub"));
    if (rc) {
        perror("symlink");
        exit(1);
    }
}

/* Opens loc below base; returns the code, and when it is OX_OK the file's first bytes in got. */
static ox_code try_open(ox_extdata_dir *d, const char *base, const char *loc, ox_error *err, char got[17]) {
    int fd = -2;
    struct stat st;
    ox_error_clear(err);
    ox_code rc = ox_extdata_open(d, base, loc, "w", err, NULL, &fd, &st);
    got[0] = 0;
    if (rc == OX_OK) {
        CHECK(fd >= 0);
        CHECK(S_ISREG(st.st_mode));
        ssize_t n = read(fd, got, 16);
        got[n > 0 ? n : 0] = 0;
        close(fd);
    } else {
        CHECK_EQ_INT(fd, -1);
        CHECK(strncmp(err->msg, "tensor 'w': ", 12) == 0);
    }
    return rc;
}

static void test_open(void) {
    ox_extdata_dir d = OX_EXTDATA_DIR_INIT;
    ox_error err = {0};
    char got[17];
    const char *model = path("model");

    CHECK_EQ_INT(try_open(&d, model, "w.bin", &err, got), OX_OK);
    CHECK_STR(got, "model bytes.....");
    CHECK(d.fd >= 0 && d.real != NULL); /* the folder stays open for the next tensor */
    CHECK_EQ_INT(try_open(&d, model, "sub/deeper/w.bin", &err, got), OX_OK);
    CHECK_STR(got, "deeper bytes....");
    CHECK_EQ_INT(try_open(&d, model, "./sub//w.bin", &err, got), OX_OK);
    CHECK_STR(got, "sub bytes.......");
    /* links whose target stays inside are followed by realpath, and the resolved path opened */
    CHECK_EQ_INT(try_open(&d, model, "in_link", &err, got), OX_OK);
    CHECK_STR(got, "model bytes.....");
    CHECK_EQ_INT(try_open(&d, model, "sub_link/w.bin", &err, got), OX_OK);
    CHECK_STR(got, "sub bytes.......");
    CHECK_EQ_INT(try_open(&d, model, "self/w.bin", &err, got), OX_OK);
    CHECK_STR(got, "model bytes.....");

    /* refused as strings: nothing is looked up */
    CHECK_EQ_INT(try_open(&d, model, path("outside/secret.bin"), &err, got), OX_EINVAL);
    CHECK(strstr(err.msg, "is refused: it is an absolute path") != NULL);
    CHECK_EQ_INT(try_open(&d, model, "../outside/secret.bin", &err, got), OX_EINVAL);
    CHECK(strstr(err.msg, "is refused: it has a '..' component") != NULL);
    CHECK_EQ_INT(try_open(&d, model, "sub/../../outside/secret.bin", &err, got), OX_EINVAL);
    CHECK_EQ_INT(try_open(&d, model, "", &err, got), OX_EINVAL);

    /* links out of the folder */
    const char *out[] = {"out_link", "out_dir/secret.bin", "abs_link", "prefix_link", "sub_link/../out_link"};
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
        ox_code rc = try_open(&d, model, out[i], &err, got);
        CHECK_EQ_INT(rc, OX_EINVAL);
        CHECK(got[0] == 0);
        if (i < 4 && !strstr(err.msg, "resolves outside the model folder"))
            fprintf(stderr, "%s: %s\n", out[i], err.msg);
        if (i < 4) CHECK(strstr(err.msg, "resolves outside the model folder") != NULL);
    }

    /* what is not a regular file inside, and what is not there */
    CHECK_EQ_INT(try_open(&d, model, "sub", &err, got), OX_EINVAL);
    CHECK(strstr(err.msg, "is not a regular file") != NULL);
    CHECK_EQ_INT(try_open(&d, model, ".", &err, got), OX_EINVAL); /* the folder itself */
    CHECK(strstr(err.msg, "resolves outside the model folder") != NULL);
    CHECK_EQ_INT(try_open(&d, model, "self", &err, got), OX_EINVAL);
    CHECK_EQ_INT(try_open(&d, model, "missing.bin", &err, got), OX_EIO);
    CHECK(strstr(err.msg, "cannot be resolved") != NULL);
    CHECK_EQ_INT(try_open(&d, model, "w.bin/x", &err, got), OX_EINVAL); /* ENOTDIR */

    ox_extdata_dir_close(&d);
    CHECK(d.fd == -1 && d.real == NULL);
    ox_extdata_dir_close(&d); /* twice is fine */

    /* a base folder given through a link is resolved first: its files are inside */
    CHECK_EQ_INT(try_open(&d, path("model_link"), "w.bin", &err, got), OX_OK);
    CHECK_STR(got, "model bytes.....");
    CHECK(strstr(d.real, "model_link") == NULL);
    ox_extdata_dir_close(&d);

    /* a base folder that does not exist */
    CHECK_EQ_INT(try_open(&d, path("nowhere"), "w.bin", &err, got), OX_EIO);
    CHECK(strstr(err.msg, "cannot resolve the model folder") != NULL);
    ox_extdata_dir_close(&d);

    /* where is passed through */
    int fd;
    struct stat st;
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_extdata_open(&d, model, "out_link", "t", &err, "node 'n' (Gather)", &fd, &st), OX_EINVAL);
    CHECK_STR(err.where, "node 'n' (Gather)");
    ox_extdata_dir_close(&d);
}

/* The last step opens the realpath'd location from the folder's descriptor, one component at a
 * time with O_NOFOLLOW: when the tree changes between realpath and open, a link met then is
 * refused. Simulated with a folder whose descriptor is that of `swapped/` (where w.bin and sub are
 * links out) while its path is still model/'s, where both are a file and a folder. */
static void test_nofollow(void) {
    ox_extdata_dir d = OX_EXTDATA_DIR_INIT;
    ox_error err = {0};
    char got[17];
    const char *model = path("model");
    CHECK_EQ_INT(try_open(&d, model, "w.bin", &err, got), OX_OK); /* resolves and opens model/ */
    close(d.fd);
    d.fd = open(path("swapped"), O_RDONLY | O_DIRECTORY);
    CHECK(d.fd >= 0);
    CHECK_EQ_INT(try_open(&d, model, "w.bin", &err, got), OX_EINVAL);
    CHECK(strstr(err.msg, "a symbolic link appeared while reading") != NULL);
    CHECK(got[0] == 0);
    CHECK_EQ_INT(try_open(&d, model, "sub/w.bin", &err, got), OX_EINVAL); /* a link as a folder */
    CHECK(strstr(err.msg, "inside the model folder") != NULL);
    CHECK(got[0] == 0);
    ox_extdata_dir_close(&d);
}

static void test_map(void) {
    int fd = open(path("model/w.bin"), O_RDONLY);
    CHECK(fd >= 0);
    void *addr = (void *)1;
    CHECK_EQ_INT(ox_extdata_map(fd, 16, &addr), 0);
    close(fd); /* the mapping outlives the descriptor */
    CHECK(addr != NULL && memcmp(addr, "model bytes.....", 16) == 0);
    ox_extdata_unmap(addr, 16);

    addr = (void *)1;
    CHECK_EQ_INT(ox_extdata_map(-1, 0, &addr), 0); /* nothing to map */
    CHECK(addr == NULL);
    ox_extdata_unmap(NULL, 0);

    addr = (void *)1;
    CHECK_EQ_INT(ox_extdata_map(-1, 16, &addr), EBADF);
    CHECK(addr == NULL);
}

/* A FIFO opened with a blocking open() waits for a writer forever (issue 15, item 7): as an
 * external data location and as the model path, it is refused at once, naming what it is. The
 * alarm turns a hang into a failed test (SIGALRM ends the process) instead of a stuck suite. */
static void test_fifo_refused(void) {
    CHECK(mkfifo(path("model/fifo.bin"), 0600) == 0);
    alarm(30);
    ox_extdata_dir d = OX_EXTDATA_DIR_INIT;
    ox_error err = {0};
    char got[17];
    CHECK_EQ_INT(try_open(&d, path("model"), "fifo.bin", &err, got), OX_EINVAL);
    CHECK(strstr(err.msg, "'fifo.bin' is not a regular file (a FIFO)") != NULL);
    ox_extdata_dir_close(&d);

    int fd = -2;
    struct stat st;
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_extdata_open_model(path("model/fifo.bin"), &err, &fd, &st), OX_EIO);
    CHECK_EQ_INT(fd, -1);
    CHECK(strstr(err.msg, "fifo.bin' is not a regular file (a FIFO)") != NULL);
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_extdata_open_model(path("model/sub"), &err, &fd, &st), OX_EIO);
    CHECK(strstr(err.msg, "is not a regular file (a folder)") != NULL);
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_extdata_open_model(path("model/missing.onnx"), &err, &fd, &st), OX_EIO);
    CHECK(strstr(err.msg, "cannot open") != NULL && strstr(err.msg, "missing.onnx") != NULL);
    alarm(0);

    /* A regular file (through a symbolic link: the model path is the caller's) opens, blocking again. */
    ox_error_clear(&err);
    CHECK_EQ_INT(ox_extdata_open_model(path("model/in_link"), &err, &fd, &st), OX_OK);
    CHECK(fd >= 0 && S_ISREG(st.st_mode));
    if (fd >= 0) {
        CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
        close(fd);
    }
    unlink(path("model/fifo.bin"));
}

static void remove_tree(void) {
    const char *links[] = {"model/in_link",          "model/sub_link",     "model/out_link",    "model/out_dir",
                           "model/abs_link",         "model/self",         "model/prefix_link", "model_link",
                           "swapped/w.bin",          "swapped/sub",        "model/w.bin",       "model/sub/w.bin",
                           "model/sub/deeper/w.bin", "outside/secret.bin", "model2/secret.bin"};
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) unlink(path(links[i]));
    const char *dirs[] = {"model/sub/deeper", "model/sub", "model", "model2", "outside", "swapped"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) rmdir(path(dirs[i]));
    rmdir(root);
}

int main(void) {
    test_align();
    test_place();
    test_bare_name();
    test_location_problem();
    test_parse_u64();
    test_check_range();
    make_tree();
    test_open();
    test_nofollow();
    test_map();
    test_fifo_refused();
    remove_tree();
    return CHECK_DONE();
}
