#include <stdint.h>
#include <string.h>

#include "ir/arena.h"
#include "check.h"

static void test_alloc_and_strings(void) {
    ox_arena *a = ox_arena_new();
    CHECK(a != NULL);
    int64_t *p = ox_arena_array(a, 10, sizeof *p);
    CHECK(p != NULL);
    for (int i = 0; i < 10; i++) CHECK(p[i] == 0); /* zeroed */
    CHECK(((uintptr_t)p % _Alignof(max_align_t)) == 0);
    CHECK_STR(ox_arena_strdup(a, "fc0.weight"), "fc0.weight");
    CHECK_STR(ox_arena_strndup(a, "abcdef", 3), "abc");
    CHECK_STR(ox_arena_printf(a, "%s_%d", "add", 3), "add_3");
    CHECK(ox_arena_strdup(a, NULL) == NULL);
    /* a big block and many small ones */
    unsigned char *big = ox_arena_alloc(a, 1 << 20);
    CHECK(big != NULL);
    memset(big, 0xab, 1 << 20);
    for (int i = 0; i < 10000; i++) CHECK(ox_arena_alloc(a, 24) != NULL);
    CHECK(!ox_arena_oom(a));
    CHECK(ox_arena_bytes(a) >= (1 << 20));
    ox_arena_free(a);
    ox_arena_free(NULL); /* no-op */
}

static void test_overflow_and_sticky_oom(void) {
    ox_arena *a = ox_arena_new();
    CHECK(ox_arena_array(a, SIZE_MAX / 2, 4) == NULL); /* n * size overflows */
    CHECK(ox_arena_oom(a));
    CHECK(ox_arena_alloc(a, 8) == NULL); /* sticky */
    ox_arena_free(a);

    a = ox_arena_new();
    ox_arena_fail_after(a, 2);
    CHECK(ox_arena_alloc(a, 8) != NULL);
    CHECK(ox_arena_alloc(a, 8) != NULL);
    CHECK(ox_arena_alloc(a, 8) == NULL);
    CHECK(ox_arena_strdup(a, "x") == NULL);
    CHECK(ox_arena_oom(a));
    ox_arena_free(a);
    CHECK(ox_arena_oom(NULL));
    CHECK(ox_arena_alloc(NULL, 8) == NULL);
}

int main(void) {
    test_alloc_and_strings();
    test_overflow_and_sticky_oom();
    return CHECK_DONE();
}
