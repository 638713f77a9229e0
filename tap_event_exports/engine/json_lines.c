/*
 * JSON lines built straight from Arrow columns, outside Python.
 *
 * Each row becomes `row_prefix {key value,key value,...} row_suffix`, byte for byte what
 * msgspec writes for the same values (strings escaped as msgspec escapes them: `\"`, `\\`,
 * the short forms \b \t \n \f \r, other control characters as lowercase \u00xx, everything
 * else as UTF-8). Values the caller could not hand over as Arrow arrays come pre-encoded by
 * msgspec, one value per line (LINES columns). Called through ctypes, which releases the GIL
 * for the call, so Python threads run while the lines are built.
 */
#include <stdint.h>
#include <string.h>

enum kind { STRING = 0, INT64 = 1, BOOL = 2, LINES = 3, JSON = 4 };

typedef struct {
    int32_t kind;
    int32_t unused;
    int64_t offset;          /* the Arrow array's offset, in elements */
    const uint8_t *validity; /* Arrow validity bitmap; NULL when every value is present */
    const int32_t *offsets;  /* STRING and JSON: Arrow's value offsets */
    const uint8_t *data;     /* values: UTF-8, JSON text, int64, bits, or the LINES text */
    int64_t cursor;          /* LINES: where the next row's value starts */
    int64_t size;            /* LINES: bytes of text */
    const uint8_t *key;      /* the encoded name and colon, after a comma but for the first */
    int64_t key_size;
    int64_t next;            /* LINES: where the value after this row's starts (scratch) */
} column;

static const char HEX[] = "0123456789abcdef";

/* Keys come in buffers of at least this many bytes (padded by the caller): a key no longer is
 * copied as one fixed-size move, its tail overwritten by what follows; a row is written only
 * with this much room to spare, so the move never passes the output's end. */
#define KEY_COPY 32

/* 0: copied as it is; otherwise the letter of a short escape, or 'u' for \u00xx. */
static const uint8_t ESCAPE[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
};

/* Whether any of 8 bytes is a control character, a quote or a backslash (SWAR). */
static inline int needs_escape8(uint64_t word) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t control = (word - ones * 0x20) & ~word;
    uint64_t quote = word ^ (ones * '"');
    uint64_t backslash = word ^ (ones * '\\');
    quote = (quote - ones) & ~quote;
    backslash = (backslash - ones) & ~backslash;
    return ((control | quote | backslash) & highs) != 0;
}

/* A JSON string of UTF-8 text, escaped as msgspec escapes it (lists.c writes items with it). */
uint8_t *json_write_string(uint8_t *out, const uint8_t *text, int64_t size) {
    const uint8_t *end = text + size;
    *out++ = '"';
    while (text < end) {
        const uint8_t *run = text;
        while (end - text >= 8) {
            uint64_t word;
            memcpy(&word, text, 8);
            if (needs_escape8(word)) break;
            text += 8;
        }
        while (text < end && ESCAPE[*text] == 0) text++;
        memcpy(out, run, (size_t)(text - run));
        out += text - run;
        if (text == end) break;
        uint8_t byte = *text++, escape = ESCAPE[byte];
        *out++ = '\\';
        if (escape == 'u') {
            out[0] = 'u';
            out[1] = '0';
            out[2] = '0';
            out[3] = (uint8_t)HEX[byte >> 4];
            out[4] = (uint8_t)HEX[byte & 15];
            out += 5;
        } else {
            *out++ = escape;
        }
    }
    *out++ = '"';
    return out;
}

static uint8_t *write_int64(uint8_t *out, int64_t value) {
    uint8_t digits[20];
    int count = 0;
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    if (value < 0) *out++ = '-';
    do {
        digits[count++] = (uint8_t)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    while (count) *out++ = digits[--count];
    return out;
}

static inline int present(const column *c, int64_t row) {
    if (c->validity == NULL) return 1;
    int64_t bit = c->offset + row;
    return (c->validity[bit >> 3] >> (bit & 7)) & 1;
}

/* The most bytes a column's value in this row can take; -1 when a LINES column ran out. */
static int64_t value_bound(column *c, int64_t row) {
    int64_t index = c->offset + row;
    switch (c->kind) {
    case STRING:
        if (!present(c, row)) return 4;
        return 2 + 6 * (int64_t)(c->offsets[index + 1] - c->offsets[index]);
    case JSON:
        if (!present(c, row)) return 4;
        return (int64_t)(c->offsets[index + 1] - c->offsets[index]);
    case INT64:
        return 20;
    case BOOL:
        return 5;
    case LINES: {
        const uint8_t *start = c->data + c->cursor;
        const uint8_t *newline = memchr(start, '\n', (size_t)(c->size - c->cursor));
        if (newline == NULL) return -1;
        c->next = newline + 1 - c->data;
        return newline - start;
    }
    default:
        return -1;
    }
}

static uint8_t *write_value(uint8_t *out, const column *c, int64_t row) {
    int64_t index = c->offset + row;
    if (c->kind != LINES && !present(c, row)) {
        memcpy(out, "null", 4);
        return out + 4;
    }
    switch (c->kind) {
    case STRING:
        return json_write_string(out, c->data + c->offsets[index],
                            (int64_t)(c->offsets[index + 1] - c->offsets[index]));
    case JSON: {
        int64_t size = (int64_t)(c->offsets[index + 1] - c->offsets[index]);
        memcpy(out, c->data + c->offsets[index], (size_t)size);
        return out + size;
    }
    case INT64: {
        int64_t value;
        memcpy(&value, c->data + 8 * index, 8);
        return write_int64(out, value);
    }
    case BOOL:
        if ((c->data[index >> 3] >> (index & 7)) & 1) {
            memcpy(out, "true", 4);
            return out + 4;
        }
        memcpy(out, "false", 5);
        return out + 5;
    default: { /* LINES */
        int64_t size = c->next - 1 - c->cursor;
        memcpy(out, c->data + c->cursor, (size_t)size);
        return out + size;
    }
    }
}

/*
 * Writes rows [row, rows) into out (capacity cap) as long as whole rows fit with KEY_COPY
 * bytes to spare; *used gets the bytes written. Returns the first row not written, or -1 when
 * a LINES column holds fewer values than rows (or a kind is unknown).
 */
int64_t json_lines_encode(column *columns, int64_t count, int64_t row, int64_t rows,
                          const uint8_t *prefix, int64_t prefix_size, const uint8_t *suffix,
                          int64_t suffix_size, uint8_t *out, int64_t cap, int64_t *used) {
    uint8_t *at = out, *end = out + cap;
    for (; row < rows; row++) {
        int64_t need = prefix_size + suffix_size;
        for (int64_t i = 0; i < count; i++) {
            int64_t bound = value_bound(&columns[i], row);
            if (bound < 0) {
                *used = at - out;
                return -1;
            }
            need += bound + columns[i].key_size;
        }
        if (need + KEY_COPY > end - at) break;
        memcpy(at, prefix, (size_t)prefix_size);
        at += prefix_size;
        for (int64_t i = 0; i < count; i++) {
            column *c = &columns[i];
            if (c->key_size <= KEY_COPY)
                memcpy(at, c->key, KEY_COPY);
            else
                memcpy(at, c->key, (size_t)c->key_size);
            at += c->key_size;
            at = write_value(at, c, row);
            if (c->kind == LINES) c->cursor = c->next;
        }
        memcpy(at, suffix, (size_t)suffix_size);
        at += suffix_size;
    }
    *used = at - out;
    return row;
}
