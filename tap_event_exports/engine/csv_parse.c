/*
 * A parser of whole-row CSV blocks into Arrow string columns, for the common case only: RFC
 * 4180 fields (quoted ones with "" for a quote and any byte inside), rows ending in \n or \r\n,
 * every row with the header's number of fields, valid UTF-8. Anything else (a lone \r, a
 * quote inside an unquoted field or after a closing one, a short or long row, bytes that are
 * not UTF-8, a byte order mark at the start) makes it give up on the block, which pyarrow's reader then parses as before. On
 * the blocks it accepts it gives exactly pyarrow's values, nulls and empty lines included, in
 * two passes: the fields' places, column by column, then each column's text copied once.
 */
#include <stdint.h>
#include <string.h>

#define GIVE_UP (-1)
#define MORE_ROWS (-2)

/* Whether `size` bytes are UTF-8 as the Unicode standard defines it (no overlong forms, no
 * surrogates, nothing above U+10FFFF): ASCII eight bytes at a time, the rest byte by byte. */
static int valid_utf8(const uint8_t *text, int64_t size) {
    int64_t i = 0;
    while (i < size) {
        if (i + 8 <= size) {
            uint64_t word;
            memcpy(&word, text + i, 8);
            if ((word & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        uint8_t c = text[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int64_t need;
        uint8_t low = 0x80, high = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) low = 0xA0;
            if (c == 0xED) high = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) low = 0x90;
            if (c == 0xF4) high = 0x8F;
        } else {
            return 0;
        }
        if (i + need >= size) return 0; /* the sequence runs past the end */
        if (text[i + 1] < low || text[i + 1] > high) return 0;
        for (int64_t k = 2; k <= need; k++)
            if ((text[i + k] & 0xC0) != 0x80) return 0;
        i += need + 1;
    }
    return 1;
}

/*
 * Pass one: where each field's text lies. `spans` holds, column by column, `capacity` rows of
 * (start, length) pairs; a quoted field with doubled quotes inside has its length negated
 * minus one (its text is unescaped in pass two). `bytes[c]` gets column c's text size.
 * Returns the rows, GIVE_UP, or MORE_ROWS when the block has more than `capacity` rows.
 */
int64_t csv_parse_fields(const uint8_t *block, int64_t size, int32_t delimiter, int64_t columns,
                         int64_t capacity, int32_t *spans, int64_t *bytes) {
    if (columns <= 0 || size >= INT32_MAX) return GIVE_UP;
    if (!valid_utf8(block, size)) return GIVE_UP;
    if (size >= 3 && memcmp(block, "\xEF\xBB\xBF", 3) == 0) return GIVE_UP; /* pyarrow drops it */
    uint8_t stops[256] = {0};
    stops[(uint8_t)delimiter] = 1;
    stops['\n'] = stops['\r'] = stops['"'] = 1;
    memset(bytes, 0, (size_t)columns * sizeof(int64_t));
    int64_t rows = 0, at = 0;
    while (at < size) {
        /* an empty line is skipped, as pyarrow's ignore_empty_lines does */
        if (block[at] == '\n') {
            at++;
            continue;
        }
        if (block[at] == '\r') {
            if (at + 1 < size && block[at + 1] == '\n') {
                at += 2;
                continue;
            }
            return GIVE_UP;
        }
        if (rows == capacity) return MORE_ROWS;
        for (int64_t column = 0;; column++) {
            if (column == columns) return GIVE_UP; /* more fields than the header */
            int32_t *span = spans + 2 * (column * capacity + rows);
            int64_t start, length;
            if (at < size && block[at] == '"') {
                int64_t quotes = 0;
                start = ++at;
                for (;;) {
                    const uint8_t *quote = memchr(block + at, '"', (size_t)(size - at));
                    if (quote == NULL) return GIVE_UP; /* the block cuts a quoted field */
                    at = quote - block + 1;
                    if (at < size && block[at] == '"') {
                        quotes++;
                        at++;
                        continue;
                    }
                    break;
                }
                length = at - 1 - start;
                bytes[column] += length - quotes;
                span[0] = (int32_t)start;
                span[1] = quotes ? (int32_t)(-length - 1) : (int32_t)length;
            } else {
                start = at;
                while (at < size && !stops[block[at]]) at++;
                if (at < size && block[at] == '"') return GIVE_UP;
                length = at - start;
                bytes[column] += length;
                span[0] = (int32_t)start;
                span[1] = (int32_t)length;
            }
            if (at == size) {
                if (column != columns - 1) return GIVE_UP;
                break;
            }
            uint8_t next = block[at];
            if (next == (uint8_t)delimiter) {
                at++;
                continue;
            }
            if (next == '\r') {
                if (at + 1 >= size || block[at + 1] != '\n') return GIVE_UP;
                at++;
            }
            if (block[at] != '\n') return GIVE_UP; /* text after a closing quote */
            at++;
            if (column != columns - 1) return GIVE_UP; /* fewer fields than the header */
            break;
        }
        rows++;
    }
    return rows;
}

/*
 * Pass two: column c's offsets, text and validity bitmap (`offsets[c]`, `data[c]`,
 * `validity[c]`) from the spans of pass one. With `nulls`, an empty value and `null` (quoted
 * or not) are nulls, as pyarrow's null_values read them. `null_counts[c]` gets the nulls.
 */
void csv_fill_columns(const uint8_t *block, const int32_t *spans, int64_t rows, int64_t columns,
                      int64_t capacity, int32_t nulls, int32_t **offsets, uint8_t **data,
                      uint8_t **validity, int64_t *null_counts) {
    for (int64_t column = 0; column < columns; column++) {
        const int32_t *span = spans + 2 * column * capacity;
        int32_t *offset = offsets[column];
        uint8_t *out = data[column], *bits = validity[column];
        int64_t nulls_here = 0;
        int32_t end = 0;
        memset(bits, 0, (size_t)((rows + 7) / 8));
        offset[0] = 0;
        for (int64_t row = 0; row < rows; row++, span += 2) {
            const uint8_t *text = block + span[0];
            int32_t length = span[1];
            if (length >= 0) {
                if (nulls && (length == 0 || (length == 4 && memcmp(text, "null", 4) == 0))) {
                    nulls_here++;
                    offset[row + 1] = end;
                    continue;
                }
                memcpy(out + end, text, (size_t)length);
                end += length;
            } else {
                int32_t raw = -length - 1, kept = 0;
                for (int32_t i = 0; i < raw; i++) {
                    out[end + kept++] = text[i];
                    if (text[i] == '"') i++; /* the second quote of a pair */
                }
                if (nulls && kept == 4 && memcmp(out + end, "null", 4) == 0) {
                    nulls_here++;
                    offset[row + 1] = end;
                    continue;
                }
                end += kept;
            }
            bits[row >> 3] |= (uint8_t)(1 << (row & 7));
            offset[row + 1] = end;
        }
        null_counts[column] = nulls_here;
    }
}
