/*
 * random.c — sampling ops, drawn at run time by ONNX Runtime: uniform, rand/randn/randint and
 * their _like forms, normal, bernoulli, randperm, and the distributions torch draws by inverse transform of a
 * uniform U in [0, 1): exponential -log(1 - U) / lambda, cauchy median + sigma tan(pi (U - 1/2)),
 * geometric ceil(log(1 - U) / log(1 - p)), log_normal exp(N(mean, std)).
 *
 * The samples differ from torch's (another generator), as with any exporter; their shape and
 * dtype do not. Draws are made in float32 (ONNX's random ops make float16, float and double) and
 * cast to the output dtype. The optimizer neither folds nor merges random nodes.
 *
 * dropout and native_dropout are here too: the identity at inference, and declined in training
 * mode, where they would draw.
 */
#include "lower/lower.h"

#include <math.h>

/* float32 samples shaped like x: uniform in [lo, hi), or normal(mean, std). */
static ox_value *draw(ox_lower *L, ox_value *x, bool normal, double a, double b) {
    if (x && x->dtype == OX_BFLOAT16) x = ox_cast(L, x, OX_FLOAT); /* the *Like ops refuse bfloat16 */
    ox_node *n = ox_op(L, normal ? "RandomNormalLike" : "RandomUniformLike", 1, x);
    if (n) {
        ox_node_set_int(L->g, n, "dtype", OX_FLOAT);
        ox_node_set_float(L->g, n, normal ? "mean" : "low", (float)a);
        ox_node_set_float(L->g, n, normal ? "scale" : "high", (float)b);
    }
    return ox_typed(ox_out(n), OX_FLOAT);
}

static int bind_as(ox_lower *L, ox_value *v, ox_dtype fallback) {
    ox_dtype t = ox_out_dtype(L, 0);
    return ox_bind(L, 0, ox_cast(L, v, t == OX_UNDEFINED ? fallback : t));
}

/* uniform(self, from=0, to=1, *, generator) */
int lower_uniform(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    return bind_as(L, draw(L, x, false, ox_arg_float(L, 1, 0), ox_arg_float(L, 2, 1)), x->dtype);
}

/* rand_like(self, *, dtype, ...) and randn_like */
int lower_rand_like(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    return bind_as(L, draw(L, x, false, 0, 1), x->dtype);
}

int lower_randn_like(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    return bind_as(L, draw(L, x, true, 0, 1), x->dtype);
}

/* randint_like(self, high, *, dtype...) and randint_like.low_dtype(self, low, high, ...):
 * floor(U * (high - low)) + low. */
static int randint(ox_lower *L, double lo, double hi) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    if (!(hi > lo)) return ox_lower_fail(L, "randint_like over [%g, %g)", lo, hi);
    ox_value *u = ox_unary(
        L, "Floor", ox_binary(L, "Mul", draw(L, x, false, 0, 1), ox_const_scalar(L, OX_FLOAT, hi - lo), OX_FLOAT),
        OX_FLOAT);
    return bind_as(L, ox_binary(L, "Add", u, ox_const_scalar(L, OX_FLOAT, lo), OX_FLOAT), x->dtype);
}

int lower_randint_like(ox_lower *L) { return randint(L, 0, (double)ox_arg_int(L, 1, 1)); }

int lower_randint_like_low(ox_lower *L) { return randint(L, (double)ox_arg_int(L, 1, 0), (double)ox_arg_int(L, 2, 1)); }

/* normal_functional(self, mean=0, std=1, *, generator) */
int lower_normal_functional(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    double std = ox_arg_float(L, 2, 1);
    if (std < 0) return ox_lower_fail(L, "std %g", std);
    return bind_as(L, draw(L, x, true, ox_arg_float(L, 1, 0), std), x->dtype);
}

/* exponential(self, lambd=1) */
int lower_exponential(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    double lambd = ox_arg_float(L, 1, 1);
    if (!(lambd > 0)) return ox_lower_fail(L, "lambd %g", lambd);
    ox_value *u = draw(L, x, false, 0, 1);
    ox_value *e = ox_binary(
        L, "Div",
        ox_unary(L, "Neg",
                 ox_unary(L, "Log", ox_binary(L, "Sub", ox_const_scalar(L, OX_FLOAT, 1), u, OX_FLOAT), OX_FLOAT),
                 OX_FLOAT),
        ox_const_scalar(L, OX_FLOAT, lambd), OX_FLOAT);
    return bind_as(L, e, x->dtype);
}

/* cauchy(self, median=0, sigma=1) */
int lower_cauchy(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    double median = ox_arg_float(L, 1, 0), sigma = ox_arg_float(L, 2, 1);
    ox_value *u = draw(L, x, false, 0, 1);
    ox_value *t = ox_unary(L, "Tan",
                           ox_binary(L, "Mul", ox_binary(L, "Sub", u, ox_const_scalar(L, OX_FLOAT, 0.5), OX_FLOAT),
                                     ox_const_scalar(L, OX_FLOAT, M_PI), OX_FLOAT),
                           OX_FLOAT);
    return bind_as(L,
                   ox_binary(L, "Add", ox_binary(L, "Mul", t, ox_const_scalar(L, OX_FLOAT, sigma), OX_FLOAT),
                             ox_const_scalar(L, OX_FLOAT, median), OX_FLOAT),
                   x->dtype);
}

/* geometric(self, p): the number of trials to the first success, >= 1 */
int lower_geometric(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    double p = ox_arg_float(L, 1, 0.5);
    if (!(p > 0 && p < 1)) return ox_lower_fail(L, "p %g (0 < p < 1 is lowered)", p);
    ox_value *u = draw(L, x, false, 0, 1);
    ox_value *g = ox_unary(
        L, "Ceil",
        ox_binary(L, "Div",
                  ox_unary(L, "Log", ox_binary(L, "Sub", ox_const_scalar(L, OX_FLOAT, 1), u, OX_FLOAT), OX_FLOAT),
                  ox_const_scalar(L, OX_FLOAT, log1p(-p)), OX_FLOAT),
        OX_FLOAT);
    g = ox_binary(L, "Max", g, ox_const_scalar(L, OX_FLOAT, 1), OX_FLOAT); /* U = 0 gives 0: one trial */
    return bind_as(L, g, x->dtype);
}

/* log_normal(self, mean=1, std=2) */
int lower_log_normal(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    return bind_as(L, ox_unary(L, "Exp", draw(L, x, true, ox_arg_float(L, 1, 1), ox_arg_float(L, 2, 2)), OX_FLOAT),
                   x->dtype);
}

/* bernoulli.default(self): 1 with probability self; bernoulli.p(self, p) */
int lower_bernoulli(ox_lower *L) {
    ox_value *x = ox_arg_value(L, 0);
    if (!x) return ox_bind(L, 0, NULL);
    ox_value *prob = ox_nargs(L) > 1 && ox_arg_at(L, 1)->kind != OX_ARG_NONE && ox_arg_at(L, 1)->kind != OX_ARG_VALUE ?
        ox_const_scalar(L, OX_FLOAT, ox_arg_float(L, 1, 0.5)) :
        ox_cast(L, x, OX_FLOAT);
    ox_value *hit = ox_binary(L, "Less", draw(L, x, false, 0, 1), prob, OX_BOOL);
    return bind_as(L, hit, x->dtype);
}

/* Samples of a static shape (argument si): RandomNormal / RandomUniform with a `shape`. */
static ox_value *draw_shaped(ox_lower *L, int si, bool normal, double a, double b) {
    int64_t shape[64];
    int n = ox_arg_ints(L, si, shape, 64);
    if (n < 0) return NULL;
    for (int i = 0; i < n; i++)
        if (shape[i] < 0) {
            ox_lower_fail(L, "size %lld", (long long)shape[i]);
            return NULL;
        }
    ox_node *r = ox_op(L, normal ? "RandomNormal" : "RandomUniform", 0);
    if (!r) return NULL;
    ox_node_set_ints(L->g, r, "shape", shape, n);
    ox_node_set_int(L->g, r, "dtype", OX_FLOAT);
    ox_node_set_float(L->g, r, normal ? "mean" : "low", (float)a);
    ox_node_set_float(L->g, r, normal ? "scale" : "high", (float)b);
    return ox_typed(ox_out(r), OX_FLOAT);
}

/* rand(size, ...), randn(size, ...) */
int lower_rand(ox_lower *L) { return bind_as(L, draw_shaped(L, 0, false, 0, 1), OX_FLOAT); }

int lower_randn(ox_lower *L) { return bind_as(L, draw_shaped(L, 0, true, 0, 1), OX_FLOAT); }

/* randint(high, size, ...), randint.low(low, high, size, ...) */
static int randint_shaped(ox_lower *L, double lo, double hi, int si) {
    if (!(hi > lo)) return ox_lower_fail(L, "randint over [%g, %g)", lo, hi);
    ox_value *u = draw_shaped(L, si, false, 0, 1);
    ox_value *f =
        ox_unary(L, "Floor", ox_binary(L, "Mul", u, ox_const_scalar(L, OX_FLOAT, hi - lo), OX_FLOAT), OX_FLOAT);
    return bind_as(L, ox_binary(L, "Add", f, ox_const_scalar(L, OX_FLOAT, lo), OX_FLOAT), OX_INT64);
}

int lower_randint(ox_lower *L) { return randint_shaped(L, 0, (double)ox_arg_int(L, 0, 1), 1); }

int lower_randint_low(ox_lower *L) {
    return randint_shaped(L, (double)ox_arg_int(L, 0, 0), (double)ox_arg_int(L, 1, 1), 2);
}

/* normal.float_float(mean, std, size, ...) */
int lower_normal_float_float(ox_lower *L) {
    double std = ox_arg_float(L, 1, 1);
    if (std < 0) return ox_lower_fail(L, "std %g", std);
    return bind_as(L, draw_shaped(L, 2, true, ox_arg_float(L, 0, 0), std), OX_FLOAT);
}

/* normal.Tensor_Tensor(mean, std), normal.Tensor_float(mean, std), normal.float_Tensor(mean, std):
 * mean + std * N(0, 1), broadcast. */
int lower_normal_tensors(ox_lower *L) {
    ox_dtype t = ox_out_dtype(L, 0);
    ox_value *mean = ox_arg_scalar(L, 0, OX_FLOAT), *std = ox_arg_scalar(L, 1, OX_FLOAT);
    if (!mean || !std) return ox_bind(L, 0, NULL);
    ox_value *like = ox_binary(L, "Add", mean, std, OX_FLOAT); /* the broadcast shape */
    ox_value *z = draw(L, like, true, 0, 1);
    return bind_as(L, ox_binary(L, "Add", mean, ox_binary(L, "Mul", std, z, OX_FLOAT), OX_FLOAT),
                   t == OX_UNDEFINED ? OX_FLOAT : t);
}

/* randperm(n, *, dtype=int64, ...): the order that sorts n uniform samples, a uniformly random
 * permutation of 0..n-1 (ties have probability ~0). n must be known at export. */
int lower_randperm(ox_lower *L) {
    const ox_arg *a = ox_arg_at(L, 0);
    if (a && a->kind == OX_ARG_VALUE) return ox_lower_unsupported(L, "randperm of a symbolic size");
    int64_t n = ox_arg_int(L, 0, 0);
    if (n < 0) return ox_lower_fail(L, "n is %lld", (long long)n);
    if (n == 0) {
        int64_t none = 0;
        ox_dtype t = ox_out_dtype(L, 0);
        return ox_bind(L, 0, ox_const_tensor(L, t ? t : OX_INT64, 1, &n, &none));
    }
    ox_node *r = ox_op(L, "RandomUniform", 0);
    if (!r) return ox_bind(L, 0, NULL);
    ox_node_set_ints(L->g, r, "shape", &n, 1);
    ox_node_set_int(L->g, r, "dtype", OX_FLOAT);
    ox_node *tk = ox_opn(L, "TopK", 2, 2, ox_typed(ox_out(r), OX_FLOAT), ox_const_i64_1d(L, n));
    if (!tk) return ox_bind(L, 0, NULL);
    return bind_as(L, ox_typed(tk->outputs[1], OX_INT64), OX_INT64);
}

/* ---- dropout: the identity at inference ---- */

/* dropout(input, p, train): the identity at inference. */
int lower_dropout(ox_lower *L) {
    double p = ox_arg_float(L, 1, 0.5);
    if (ox_arg_bool(L, 2, false) && p > 0)
        return ox_lower_unsupported(L,
                                    "dropout with train=True and p=%g is random; export the model "
                                    "in eval() mode",
                                    p);
    return ox_bind(L, 0, ox_arg_value(L, 0));
}

/* native_dropout(input, p, train?) -> (out, mask): train None means training, as in torch. */
int lower_native_dropout(ox_lower *L) {
    double p = ox_arg_float(L, 1, 0.5);
    bool train = ox_arg_is_none(L, 2) || ox_arg_bool(L, 2, true);
    if (train && p > 0)
        return ox_lower_unsupported(L,
                                    "native_dropout in training mode with p=%g is random; export "
                                    "the model in eval() mode",
                                    p);
    ox_value *x = ox_arg_value(L, 0);
    int rc = ox_bind(L, 0, x);
    if (rc != OX_OK || L->node->noutputs < 2) return rc;
    ox_value *shape = ox_unary(L, "Shape", x, OX_INT64);
    ox_value *mask = ox_out(ox_op(L, "Expand", 2, ox_const_scalar(L, OX_BOOL, 1), shape));
    return ox_bind(L, 1, ox_cast(L, ox_typed(mask, OX_BOOL), ox_out_dtype(L, 1)));
}
