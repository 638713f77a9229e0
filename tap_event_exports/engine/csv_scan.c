/*
 * Scans of CSV text blocks that pyarrow does not offer, outside Python and with the GIL
 * released (ctypes lets go of it for the call).
 */
#include <stdint.h>
#include <string.h>

/*
 * Whether a quote stands between two bytes that are neither the delimiter, a line end nor a
 * quote: the bytes RE2 matches with [^d\r\n"]"[^d\r\n"] in a Latin-1 reading of the block.
 * Python's csv (strict) refuses such a field and pyarrow reads it otherwise.
 */
int64_t csv_stray_quote(const uint8_t *block, int64_t size, int32_t delimiter) {
    if (size < 3) return 0;
    const uint8_t *at = block + 1, *last = block + size - 1; /* a quote's neighbours exist */
    while (at < last) {
        const uint8_t *quote = memchr(at, '"', (size_t)(last - at));
        if (quote == NULL) return 0;
        uint8_t before = quote[-1], after = quote[1];
        if (before != delimiter && before != '\r' && before != '\n' && before != '"' &&
            after != delimiter && after != '\r' && after != '\n' && after != '"')
            return 1;
        at = quote + 1;
    }
    return 0;
}

/*
 * Where the last whole row of a block ends: just past its last newline that an even number of
 * quotes precede (a row end in RFC 4180 CSV), 0 if no newline does. The quotes are counted
 * once over the block (a loop the compiler vectorizes), then the block is walked back from
 * its end, uncounting quotes, to the first newline at an even count.
 */
int64_t csv_row_end(const uint8_t *block, int64_t size) {
    int64_t quotes = 0;
    for (int64_t i = 0; i < size; i++) quotes += block[i] == '"';
    for (int64_t i = size - 1; i >= 0; i--) {
        if (block[i] == '"')
            quotes--;
        else if (block[i] == '\n' && (quotes & 1) == 0)
            return i + 1;
    }
    return 0;
}

/*
 * The validity bitmap (Arrow's, bit 0 of byte 0 first) of a string column read as written,
 * with `` and `null` as nulls, as the columnar reader's null values read them. Returns the
 * nulls. `offset` is the array's, `validity` (NULL: every value present) is read at it too.
 */
int64_t csv_null_spellings(int64_t rows, int64_t offset, const uint8_t *validity,
                           const int32_t *offsets, const uint8_t *data, uint8_t *out) {
    int64_t nulls = 0;
    memset(out, 0, (size_t)((rows + 7) / 8));
    for (int64_t row = 0; row < rows; row++) {
        int64_t index = offset + row;
        int present = validity == NULL || ((validity[index >> 3] >> (index & 7)) & 1);
        if (present) {
            int32_t size = offsets[index + 1] - offsets[index];
            const uint8_t *text = data + offsets[index];
            present = !(size == 0 || (size == 4 && memcmp(text, "null", 4) == 0));
        }
        if (present)
            out[row >> 3] |= (uint8_t)(1 << (row & 7));
        else
            nulls++;
    }
    return nulls;
}
