/*
 * onnx/wire.h — the protobuf wire format, both directions, and the ONNX field numbers: what the
 * writer (onnx/write.c) and the reader (onnx/read.c, onnx/read_function.c) share. Internal to
 * src/onnx (and its tests); nothing here is for other modules.
 *
 *     unsigned char b[OX_VARINT_MAX];
 *     size_t n = ox_varint_encode(b, ox_wire_tag(OX_TensorProto_dims, OX_WIRE_VARINT));
 *     const uint8_t *p = b;
 *     uint64_t tag;
 *     if (ox_varint_decode(&p, b + n, &tag))      // p now past the tag
 *         assert(ox_wire_field(tag) == OX_TensorProto_dims);
 *
 * A field is a tag (varint: number << 3 | wire type) then its payload: a varint (VARINT), 4 or 8
 * little-endian bytes (I32, I64), or a varint length and that many bytes (LEN: strings, bytes,
 * nested messages, packed repeated scalars). Field numbers come from onnx/fields.def, one row per
 * field, as OX_<Message>_<field> (OX_GraphProto_initializer = 5); OX_<Message>_<field>_WIRE is
 * the wire type the row declares. All functions are static inline: no symbol leaves the file that
 * includes this header.
 */
#ifndef OX_ONNX_WIRE_H
#define OX_ONNX_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wire types. SGROUP/EGROUP (deprecated groups) are never written, and refused by the reader. */
typedef enum ox_wire {
    OX_WIRE_VARINT = 0,
    OX_WIRE_I64 = 1,
    OX_WIRE_LEN = 2,
    OX_WIRE_SGROUP = 3,
    OX_WIRE_EGROUP = 4,
    OX_WIRE_I32 = 5,
} ox_wire;

/* The largest field number protobuf allows (2^29 - 1); 0 is not a field number either. */
#define OX_FIELD_MAX ((1u << 29) - 1)

/* The longest varint: 64 bits, 7 per byte. */
#define OX_VARINT_MAX 10

/* Field numbers and enum values, from fields.def. */
enum ox_onnx_field {
#define OX_FIELD(msg, field, number, wire) OX_##msg##_##field = number,
#define OX_ENUM(type, name, value)
#include "onnx/fields.def"
#undef OX_FIELD
#undef OX_ENUM
};

enum ox_onnx_field_wire {
#define OX_FIELD(msg, field, number, wire) OX_##msg##_##field##_WIRE = OX_WIRE_##wire,
#define OX_ENUM(type, name, value)
#include "onnx/fields.def"
#undef OX_FIELD
#undef OX_ENUM
};

enum ox_onnx_enum_value {
#define OX_FIELD(msg, field, number, wire)
#define OX_ENUM(type, name, value) OX_##type##_##name = value,
#include "onnx/fields.def"
#undef OX_FIELD
#undef OX_ENUM
};

static inline uint64_t ox_wire_tag(uint32_t field, ox_wire wt) { return (uint64_t)field << 3 | wt; }
static inline uint64_t ox_wire_field(uint64_t tag) { return tag >> 3; }
static inline unsigned ox_wire_type(uint64_t tag) { return (unsigned)(tag & 7); }

/* Bytes of v as a varint (1 to OX_VARINT_MAX). */
static inline size_t ox_varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Writes v as an unsigned LEB128 varint into b; returns its length (= ox_varint_len(v)). */
static inline size_t ox_varint_encode(unsigned char b[OX_VARINT_MAX], uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (unsigned char)v;
    return n;
}

/* Reads a varint at *pp, never at or past end. True and *pp moved past it; false, *pp unmoved,
 * when it is truncated, longer than OX_VARINT_MAX bytes or holds more than 64 bits. */
static inline bool ox_varint_decode(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned i = 0; i < OX_VARINT_MAX; i++) {
        if (p >= end) return false;
        uint8_t b = *p++;
        if (i == OX_VARINT_MAX - 1 && b > 1) return false; /* past 64 bits */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return true;
        }
    }
    return false;
}

/* The n (4 or 8) little-endian bytes at p: the bits of an I32 or I64 field. */
static inline uint64_t ox_wire_le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#endif
