#include "ir/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Blocks are chained newest-first; a request larger than a quarter block gets a block of its own
 * so that big tensors do not waste the tail of the current one. */
typedef struct block {
    struct block *next;
    size_t used, size;
    _Alignas(max_align_t) unsigned char data[];
} block;

struct ox_arena {
    block *head;
    size_t total;
    long fail_budget; /* -1: never fail on purpose */
    bool oom;
};

enum { BLOCK_SIZE = 64 * 1024, ALIGN = _Alignof(max_align_t) };

ox_arena *ox_arena_new(void) {
    ox_arena *a = calloc(1, sizeof *a);
    if (a) a->fail_budget = -1;
    return a;
}

void ox_arena_free(ox_arena *a) {
    if (!a) return;
    block *b = a->head;
    while (b) {
        block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

static block *new_block(ox_arena *a, size_t size) {
    if (size > SIZE_MAX - sizeof(block)) return NULL;
    block *b = malloc(sizeof(block) + size);
    if (!b) return NULL;
    b->used = 0;
    b->size = size;
    a->total += sizeof(block) + size;
    return b;
}

void *ox_arena_alloc(ox_arena *a, size_t size) {
    if (!a || a->oom) return NULL;
    if (a->fail_budget == 0) {
        a->oom = true;
        return NULL;
    }
    if (a->fail_budget > 0) a->fail_budget--;
    if (size == 0) size = 1;
    if (size > SIZE_MAX - ALIGN) {
        a->oom = true;
        return NULL;
    }
    size_t rounded = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    block *b = a->head;
    if (rounded > BLOCK_SIZE / 4) {
        block *big = new_block(a, rounded);
        if (!big) {
            a->oom = true;
            return NULL;
        }
        big->used = rounded;
        /* Keep the current block at the head: it still has room for small requests. */
        if (b) {
            big->next = b->next;
            b->next = big;
        } else {
            big->next = NULL;
            a->head = big;
        }
        memset(big->data, 0, rounded);
        return big->data;
    }
    if (!b || b->size - b->used < rounded) {
        b = new_block(a, BLOCK_SIZE);
        if (!b) {
            a->oom = true;
            return NULL;
        }
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += rounded;
    memset(p, 0, rounded);
    return p;
}

void *ox_arena_array(ox_arena *a, size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) {
        if (a) a->oom = true;
        return NULL;
    }
    return ox_arena_alloc(a, n * size);
}

char *ox_arena_strndup(ox_arena *a, const char *s, size_t n) {
    if (!s) return NULL;
    if (n == SIZE_MAX) {
        if (a) a->oom = true;
        return NULL;
    }
    char *p = ox_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

char *ox_arena_strdup(ox_arena *a, const char *s) { return s ? ox_arena_strndup(a, s, strlen(s)) : NULL; }

char *ox_arena_printf(ox_arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        if (a) a->oom = true;
        return NULL;
    }
    char *p = ox_arena_alloc(a, (size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

bool ox_arena_oom(const ox_arena *a) { return !a || a->oom; }
size_t ox_arena_bytes(const ox_arena *a) { return a ? a->total : 0; }
void ox_arena_fail_after(ox_arena *a, long budget) {
    if (a) a->fail_budget = budget;
}
