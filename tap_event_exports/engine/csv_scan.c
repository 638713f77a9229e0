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
