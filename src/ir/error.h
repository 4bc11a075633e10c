/*
 * error.h — the error object every fallible core call fills.
 *
 *     ox_error err = {0};
 *     if (ox_model_save(g, &opts, "m.onnx", &err) != OX_OK)
 *         fprintf(stderr, "%s (at %s)\n", err.msg, err.where);
 *
 * Nothing in the core aborts, exits or longjmps: it runs inside a Python process. The first error
 * set wins; later ones are ignored so that the message names the root cause.
 */
#ifndef OX_ERROR_H
#define OX_ERROR_H

typedef enum ox_code {
    OX_OK = 0,
    OX_ENOMEM, /* out of memory */
    OX_EINVAL, /* bad argument from the caller */
    OX_EUNSUPPORTED, /* a torch op or argument form the lowering does not handle */
    OX_ELOWER, /* a lowering failed on an op it knows */
    OX_EIO, /* reading or writing a file */
    OX_EFORMAT, /* malformed ONNX bytes */
} ox_code;

typedef struct ox_error {
    ox_code code;
    char msg[1024];
    char where[256]; /* the node (or file) the error happened at; empty when none */
} ox_error;

/* Sets code and message unless an error is already set; returns code. `where` may be NULL. */
ox_code ox_error_set(ox_error *e, ox_code code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ox_error_clear(ox_error *e);
const char *ox_code_name(ox_code code);

#endif
