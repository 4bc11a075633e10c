/*
 * ir/hash.h — the one string hash of the core's hash tables over names a file can choose.
 *
 *     uint32_t slot = (uint32_t)ox_hash_bytes(name, strlen(name)) & (cap - 1);
 *
 * SipHash-1-3 under a key drawn once per process from /dev/urandom (the first call draws it,
 * thread-safely). An unkeyed hash let a crafted model give 120,000 names one slot and made reading
 * it quadratic (issue 15, item 5); with a secret key, colliding names cannot be computed in
 * advance, so every table stays O(1) expected per lookup whatever the names. Values differ between
 * processes: never write a hash to a file or order output by it.
 *
 * When /dev/urandom cannot be read (a sandbox without /dev), the key falls back to the clock, the
 * process id and addresses (ASLR): weaker, but the core never fails or aborts for want of a key.
 */
#ifndef OX_IR_HASH_H
#define OX_IR_HASH_H

#include <stddef.h>
#include <stdint.h>

/* The keyed hash of the n bytes at p (p may be NULL when n is 0). */
uint64_t ox_hash_bytes(const void *p, size_t n);

#endif
