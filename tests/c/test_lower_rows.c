/* Every row of lower.def fed arguments it does not expect: random kinds (None, bools, ints out of
 * range, floats, strings, nested lists, tensors of any dtype and rank, symbolic dims, dangling
 * value ids) and random output metadata. A row may lower, decline (OX_EUNSUPPORTED) or fail
 * (OX_ELOWER) with a message; it must not crash, read out of bounds (ASan/UBSan run this) or leave
 * a graph output unbound on success. Deterministic: a fixed seed, so a failure replays. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "lower/lower.h"

enum { ROUNDS = 500, NVALUES = 8, MAX_ARGS = 7 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next(void) { /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 32);
}

static int outcomes[3]; /* lowered, declined, failed: printed so a run shows it exercised rows */

static uint32_t below(uint32_t n) { return n ? next() % n : 0; }

static const ox_dtype dtypes[] = {OX_FLOAT, OX_FLOAT16, OX_BFLOAT16, OX_DOUBLE, OX_INT64,
                                  OX_INT32, OX_INT8,    OX_UINT8,    OX_BOOL,   OX_UNDEFINED};

static ox_dim *random_dims(ox_arena *a, int rank) {
    ox_dim *d = ox_arena_array(a, rank ? rank : 1, sizeof *d);
    for (int k = 0; k < rank; k++) {
        if (below(6) == 0) d[k] = (ox_dim){.value = -1, .param = "s0"};
        else d[k] = (ox_dim){.value = below(5)};
    }
    return d;
}

static void random_arg(ox_arena *a, ox_arg *arg, int depth) {
    static const int64_t edge[] = {0, 1, -1, 2, -2, 3, 64, INT64_MAX, INT64_MIN, 1000000007};
    switch (below(depth ? 7 : 9)) {
    case 0: arg->kind = OX_ARG_NONE; break;
    case 1:
        arg->kind = OX_ARG_BOOL;
        arg->u.i = below(2);
        break;
    case 2:
        arg->kind = OX_ARG_INT;
        arg->u.i = edge[below(10)];
        break;
    case 3:
        arg->kind = OX_ARG_FLOAT;
        arg->u.f = (double)(int)below(200) / 7.0 - 10.0;
        break;
    case 4:
        arg->kind = OX_ARG_STRING;
        arg->u.s = below(2) ? "tanh" : "floor";
        break;
    case 5:
    case 6:
        arg->kind = OX_ARG_VALUE;
        arg->u.ref = below(NVALUES + 2);
        break; /* may dangle */
    default: {
        int n = (int)below(5);
        arg->kind = OX_ARG_LIST;
        arg->u.list.n = n;
        arg->u.list.items = ox_arena_array(a, n ? n : 1, sizeof *arg->u.list.items);
        for (int k = 0; k < n; k++) random_arg(a, &arg->u.list.items[k], depth + 1);
    }
    }
}

/* One program: NVALUES/2 inputs of random dtype and rank, one node of `target` with random
 * arguments, its outputs the graph outputs. */
static void fuzz_row(const char *target, int opset) {
    ox_graph *g = ox_graph_new(opset);
    CHECK(g != NULL);
    if (!g) return;
    ox_arena *a = g->arena;
    ox_aten_program p = {0};
    p.nvalues = NVALUES;
    p.table = ox_arena_array(a, NVALUES, sizeof *p.table);
    for (int i = 0; i < NVALUES / 2; i++) {
        int rank = (int)below(5);
        ox_dtype t = dtypes[below(9)];
        p.table[i] = ox_graph_add_input(g, ox_arena_printf(a, "x%d", i), t, rank, random_dims(a, rank));
    }
    ox_aten_node *n = ox_arena_alloc(a, sizeof *n);
    n->target = target;
    n->name = "node";
    n->where = below(2) ? "m.block (Block), model.py:3" : NULL;
    n->nargs = (int)below(MAX_ARGS + 1);
    n->args = ox_arena_array(a, n->nargs ? n->nargs : 1, sizeof *n->args);
    /* Mostly a tensor first, as nearly every schema has. */
    for (int i = 0; i < n->nargs; i++) {
        random_arg(a, &n->args[i], 0);
        if (i == 0 && below(4)) n->args[i] = (ox_arg){.kind = OX_ARG_VALUE, .u.ref = below(NVALUES / 2)};
    }
    n->noutputs = 1 + (int)below(3);
    n->outputs = ox_arena_array(a, n->noutputs, sizeof *n->outputs);
    n->meta = ox_arena_array(a, n->noutputs, sizeof *n->meta);
    for (int i = 0; i < n->noutputs; i++) {
        n->outputs[i] = NVALUES / 2 + i;
        int rank = (int)below(6) - 1;
        n->meta[i] =
            (ox_meta){.dtype = dtypes[below(10)], .rank = rank, .dims = rank > 0 ? random_dims(a, rank) : NULL};
    }
    p.nodes = n;
    p.nnodes = 1;
    p.outputs = n->outputs;
    p.noutputs = 1; /* only output 0 must exist: rows bind the rest when the op has them */
    ox_lower_report rep;
    ox_code rc = ox_lower_run(g, &p, &rep);
    CHECK(rc == OX_OK || rc == OX_EUNSUPPORTED || rc == OX_ELOWER);
    if (rc == OX_OK) {
        CHECK_EQ_INT(g->noutputs, 1);
        CHECK(g->outputs[0] != NULL);
    } else {
        CHECK(g->err.msg[0] != '\0');
    }
    if (rc == OX_EUNSUPPORTED) CHECK(rep.nunsupported == 1);
    outcomes[rc == OX_OK ? 0 : rc == OX_EUNSUPPORTED ? 1 : 2]++;
    ox_graph_free(g);
}

int main(void) {
    int rows = 0, lo, hi;
    for (const char *t; (t = ox_lower_target(rows, &lo, &hi)); rows++) {
        CHECK(lo >= 18 && hi <= 24 && lo <= hi);
        for (int r = 0; r < ROUNDS; r++) fuzz_row(t, lo + (int)below((uint32_t)(hi - lo + 1)));
    }
    CHECK(rows > 200);
    fprintf(stderr, "%d rows x %d rounds: %d lowered, %d declined, %d failed\n", rows, ROUNDS, outcomes[0], outcomes[1],
            outcomes[2]);
    CHECK(outcomes[0] > rows); /* random arguments must still often be valid */
    return CHECK_DONE();
}
