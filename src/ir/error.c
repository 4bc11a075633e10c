#include "ir/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

ox_code ox_error_set(ox_error *e, ox_code code, const char *where, const char *fmt, ...) {
    if (!e || e->code != OX_OK) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    snprintf(e->where, sizeof e->where, "%s", where ? where : "");
    return code;
}

void ox_error_clear(ox_error *e) {
    if (!e) return;
    e->code = OX_OK;
    e->msg[0] = 0;
    e->where[0] = 0;
}

const char *ox_code_name(ox_code code) {
    switch (code) {
    case OX_OK: return "ok";
    case OX_ENOMEM: return "out of memory";
    case OX_EINVAL: return "invalid argument";
    case OX_EUNSUPPORTED: return "unsupported";
    case OX_ELOWER: return "lowering failed";
    case OX_EIO: return "i/o error";
    case OX_EFORMAT: return "malformed ONNX";
    }
    return "unknown error";
}
