/*
 * List values as vendors write them, to JSON text, outside Python: exactly the lists of
 * lists.py's to_array, for the values it reads without json.loads. A simple list (quoted
 * items without backslashes or line breaks) in either syntax; in the quoted syntax
 * (myTracker's) also ClickHouse's escaped items (escaped_items, unescape) and items holding
 * line breaks, quotes and commas, item ends found as quoted_items finds them. Anything else
 * (JSON with escapes, numbers, nesting; whitespace Python's \s may match beyond ASCII; a \xHH
 * escape of a byte beyond ASCII) stops the call at its row: the caller then reads the column
 * in Python.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

uint8_t *json_write_string(uint8_t *out, const uint8_t *text, int64_t size);

#define PARSE_BUDGET 65536 /* lists.py's _PARSE_BUDGET */
#define MAX_ITEMS 4096     /* items of one value kept here; a longer list is left to Python */

typedef struct {
    int64_t start, end; /* an item's text: [start, end) */
} item;

/* Python's \s (str patterns) among ASCII bytes. */
static inline int regex_space(uint8_t c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* lists.py's _SPACE. */
static inline int list_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Records an item [start, end); 0 past MAX_ITEMS (the value is left to Python). */
static inline int take(item *items, int64_t *count, int64_t start, int64_t end) {
    if (*count == MAX_ITEMS) return 0;
    items[*count].start = start;
    items[*count].end = end;
    (*count)++;
    return 1;
}

/* Skips Python's \s among ASCII bytes; a byte beyond ASCII returns -1 (undecided here). */
#define SKIP_SPACES                                                                            \
    while (at < size && (regex_space(text[at]) || text[at] >= 0x80)) {                         \
        if (text[at] >= 0x80) return -1;                                                       \
        at++;                                                                                  \
    }

/*
 * _SIMPLE_LIST.fullmatch: 1 and the items if it matches, 0 if it does not, -1 where a byte
 * outside the items is not ASCII (Python's \s might match it: undecided here).
 */
static int simple_list(const uint8_t *text, int64_t size, item *items, int64_t *count) {
    int64_t at = 0;
    *count = 0;
    if (size < 2 || text[0] != '[') return 0;
    at = 1;
    SKIP_SPACES
    if (at < size && text[at] == ']') return at + 1 == size;
    for (;;) {
        if (at >= size || (text[at] != '\'' && text[at] != '"')) return 0;
        uint8_t quote = text[at++];
        int64_t start = at;
        while (at < size && text[at] != quote && text[at] != '\\' && text[at] != '\n' &&
               text[at] != '\r')
            at++;
        if (at >= size || text[at] != quote) return 0;
        if (!take(items, count, start, at)) return -1;
        at++;
        SKIP_SPACES
        if (at < size && text[at] == ']') return at + 1 == size;
        if (at >= size || text[at] != ',') return 0;
        at++;
        SKIP_SPACES
        if (at < size && text[at] == ']') return at + 1 == size; /* a trailing comma */
    }
}

/*
 * _ESCAPED_LIST.fullmatch: 1 and the items (their escapes not yet read) if it matches, 0 if it
 * does not, -1 where a byte outside the items is not ASCII (undecided here). An item ends at
 * the first quote of its kind that no backslash escapes.
 */
static int escaped_list(const uint8_t *text, int64_t size, item *items, int64_t *count) {
    int64_t at = 0;
    *count = 0;
#define CLOSE                                                                                  \
    {                                                                                          \
        at++;                                                                                  \
        SKIP_SPACES                                                                            \
        return at == size;                                                                     \
    }
    SKIP_SPACES
    if (at >= size || text[at] != '[') return 0;
    at++;
    SKIP_SPACES
    if (at < size && text[at] == ']') CLOSE
    for (;;) {
        if (at >= size || (text[at] != '\'' && text[at] != '"')) return 0;
        uint8_t quote = text[at++];
        int64_t start = at;
        while (at < size && text[at] != quote) at += text[at] == '\\' ? 2 : 1;
        if (at >= size) return 0;
        if (!take(items, count, start, at)) return -1;
        at++;
        SKIP_SPACES
        if (at < size && text[at] == ']') CLOSE
        if (at >= size || text[at] != ',') return 0;
        at++;
        SKIP_SPACES
        if (at < size && text[at] == ']') CLOSE /* a trailing comma */
    }
#undef CLOSE
}
#undef SKIP_SPACES

static inline int hex_digit(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
    return -1;
}

/*
 * lists.py's unescape of an item's text into out (at most size bytes): ClickHouse's escapes
 * read, an unknown one kept with its backslash. -1 for a \xHH beyond ASCII (lists.py reads
 * such bytes together, as UTF-8 or not).
 */
static int64_t unescape(const uint8_t *text, int64_t size, uint8_t *out) {
    int64_t written = 0;
    for (int64_t at = 0; at < size; at++) {
        uint8_t byte = text[at];
        if (byte != '\\' || at + 1 == size) {
            out[written++] = byte;
            continue;
        }
        uint8_t code = text[++at];
        switch (code) {
        case '\\':
        case '\'':
        case '"': out[written++] = code; break;
        case 'n': out[written++] = '\n'; break;
        case 'r': out[written++] = '\r'; break;
        case 't': out[written++] = '\t'; break;
        case 'b': out[written++] = '\b'; break;
        case 'f': out[written++] = '\f'; break;
        case '0': out[written++] = 0; break;
        case 'a': out[written++] = 7; break;
        case 'v': out[written++] = 11; break;
        default:
            if (code == 'x' && at + 2 < size && hex_digit(text[at + 1]) >= 0 &&
                hex_digit(text[at + 2]) >= 0) {
                int value = hex_digit(text[at + 1]) * 16 + hex_digit(text[at + 2]);
                if (value >= 0x80) return -1;
                out[written++] = (uint8_t)value;
                at += 2;
            } else { /* an unknown escape keeps its backslash */
                out[written++] = '\\';
                out[written++] = code;
            }
        }
    }
    return written;
}

static int64_t skip_space(const uint8_t *text, int64_t at) {
    while (list_space(text[at])) at++;
    return at;
}

static int64_t find(const uint8_t *text, uint8_t quote, int64_t from, int64_t end) {
    if (from >= end) return -1;
    const uint8_t *found = memchr(text + from, quote, (size_t)(end - from));
    return found == NULL ? -1 : found - text;
}

/* quoted_items: 1 and the items, 0 when it is not such a list, -1 past MAX_ITEMS. */
static int quoted_items(const uint8_t *value, int64_t size, item *items, int64_t *count) {
    int64_t first = 0, last = size;
    while (first < last && list_space(value[first])) first++;
    while (last > first && list_space(value[last - 1])) last--;
    const uint8_t *text = value + first;
    int64_t end = last - first - 1;
    *count = 0;
    if (end < 1 || text[0] != '[' || text[end] != ']') return 0;
    int64_t start = skip_space(text, 1);
    if (start == end) return 1;
    int64_t choices[MAX_ITEMS][2], taken = 0; /* (start, next quote to try) of taken items */
    int64_t search = start + 1, budget = PARSE_BUDGET;
    while (budget > 0) {
        uint8_t quote = text[start];
        int64_t close = quote == '\'' || quote == '"' ? find(text, quote, search, end) : -1;
        int advanced = 0;
        while (close != -1 && budget > 0) {
            budget--;
            int64_t after = skip_space(text, close + 1);
            if (after == end || (text[after] == ',' && skip_space(text, after + 1) == end)) {
                if (*count == MAX_ITEMS) return -1;
                items[*count].start = first + start + 1;
                items[*count].end = first + close;
                (*count)++;
                return 1;
            }
            if (text[after] == ',') {
                int64_t following = skip_space(text, after + 1);
                if (text[following] == '\'' || text[following] == '"') {
                    if (*count == MAX_ITEMS) return -1;
                    choices[taken][0] = start;
                    choices[taken][1] = close + 1;
                    taken++;
                    items[*count].start = first + start + 1;
                    items[*count].end = first + close;
                    (*count)++;
                    start = following;
                    search = following + 1;
                    advanced = 1;
                    break;
                }
            }
            close = find(text, quote, close + 1, end);
        }
        if (!advanced) {
            if (taken == 0) return 0;
            taken--;
            start = choices[taken][0];
            search = choices[taken][1];
            (*count)--;
        }
    }
    return 0;
}

static inline int present(const uint8_t *validity, int64_t row) {
    return validity == NULL || ((validity[row >> 3] >> (row & 7)) & 1);
}

/*
 * Writes each list value of a string array (offset 0) as a JSON array of strings into
 * out_offsets (rows + 1) and out_data (capacity bytes; 6 per input byte and 2 per row
 * suffice). quoted: 1 for myTracker's syntax, 0 for JSON text. Returns rows, or the first
 * row it cannot read exactly as to_array does.
 */
int64_t lists_to_json(int64_t rows, const uint8_t *validity, const int32_t *offsets,
                      const uint8_t *data, int32_t quoted, int32_t *out_offsets,
                      uint8_t *out_data, int64_t capacity) {
    item items[MAX_ITEMS];
    uint8_t *scratch = NULL; /* escaped items decoded, before JSON encoding */
    int64_t scratch_size = 0;
    uint8_t *out = out_data, *limit = out_data + capacity;
    out_offsets[0] = 0;
    for (int64_t row = 0; row < rows; row++) {
        if (present(validity, row)) {
            const uint8_t *text = data + offsets[row];
            int64_t size = offsets[row + 1] - offsets[row], count = 0;
            int read = simple_list(text, size, items, &count), escaped = 0;
            if (read == 0 && quoted && memchr(text, '\\', (size_t)size) != NULL) {
                read = escaped_list(text, size, items, &count);
                if (read == -1) {
                    free(scratch);
                    return row;
                }
                escaped = read == 1;
            }
            if (read == 0 && quoted) read = quoted_items(text, size, items, &count);
            if (read != 1) {
                free(scratch);
                return row;
            }
            int64_t need = 2;
            for (int64_t i = 0; i < count; i++) need += 3 + 6 * (items[i].end - items[i].start);
            if (need > limit - out) {
                free(scratch);
                return row;
            }
            if (escaped && size + 1 > scratch_size) { /* one buffer, grown as values need */
                uint8_t *grown = realloc(scratch, (size_t)size + 1);
                if (grown == NULL) {
                    free(scratch);
                    return row;
                }
                scratch = grown;
                scratch_size = size + 1;
            }
            *out++ = '[';
            for (int64_t i = 0; i < count; i++) {
                const uint8_t *at = text + items[i].start;
                int64_t length = items[i].end - items[i].start;
                if (escaped) {
                    length = unescape(at, length, scratch);
                    if (length < 0) {
                        free(scratch);
                        return row;
                    }
                    at = scratch;
                }
                if (i) *out++ = ',';
                out = json_write_string(out, at, length);
            }
            *out++ = ']';
        }
        out_offsets[row + 1] = (int32_t)(out - out_data);
    }
    free(scratch);
    return rows;
}
