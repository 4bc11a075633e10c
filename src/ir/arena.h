/*
 * arena.h — bump allocator that frees a whole graph at once.
 *
 *     ox_arena *a = ox_arena_new();
 *     int64_t *dims = ox_arena_alloc(a, 4 * sizeof *dims);  // owned by a
 *     char *name = ox_arena_strdup(a, "fc0.weight");         // owned by a
 *     if (ox_arena_oom(a)) ...                                // one check at the boundary
 *     ox_arena_free(a);                                       // frees every block
 *
 * Out of memory is sticky (SQLite's mallocFailed): after the first failed allocation every later
 * one returns NULL too, so callers may chain allocations and check once.
 */
#ifndef OX_ARENA_H
#define OX_ARENA_H

#include <stddef.h>
#include <stdbool.h>

typedef struct ox_arena ox_arena;

ox_arena *ox_arena_new(void); /* NULL when out of memory */
void ox_arena_free(ox_arena *a); /* NULL is a no-op */

/* Zeroed, aligned for any scalar type. NULL on failure (and the failure sticks). */
void *ox_arena_alloc(ox_arena *a, size_t size);
/* n * size with the product checked for overflow. */
void *ox_arena_array(ox_arena *a, size_t n, size_t size);
char *ox_arena_strdup(ox_arena *a, const char *s); /* NULL s gives NULL */
char *ox_arena_strndup(ox_arena *a, const char *s, size_t n);
char *ox_arena_printf(ox_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

bool ox_arena_oom(const ox_arena *a);
size_t ox_arena_bytes(const ox_arena *a); /* bytes requested from malloc so far */

/* Tests force the sticky failure after `budget` more allocations (-1 disables). */
void ox_arena_fail_after(ox_arena *a, long budget);

#endif
