/*
 * List values as vendors write them, to JSON text, outside Python: exactly the lists of
 * lists.py's to_array, for the values it reads without json.loads. A simple list (quoted
 * items without backslashes or line breaks) in either syntax; in the quoted syntax
 * (myTracker's) also items holding line breaks, quotes and commas, item ends found as
 * quoted_items finds them. Anything else (JSON with escapes, numbers, nesting; whitespace
 * Python's \s may match beyond ASCII) stops the call at its row: the caller then reads the
 * column in Python.
 */
#include <stdint.h>
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

/*
 * _SIMPLE_LIST.fullmatch: 1 and the items if it matches, 0 if it does not, -1 where a byte
 * outside the items is not ASCII (Python's \s might match it: undecided here).
 */
static int simple_list(const uint8_t *text, int64_t size, item *items, int64_t *count) {
    int64_t at = 0;
    *count = 0;
    if (size < 2 || text[0] != '[') return 0;
    at = 1;
#define SKIP_SPACES                                                                            \
    while (at < size && (regex_space(text[at]) || text[at] >= 0x80)) {                         \
        if (text[at] >= 0x80) return -1;                                                       \
        at++;                                                                                  \
    }
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
        if (*count == MAX_ITEMS) return -1;
        items[*count].start = start;
        items[*count].end = at;
        (*count)++;
        at++;
        SKIP_SPACES
        if (at < size && text[at] == ']') return at + 1 == size;
        if (at >= size || text[at] != ',') return 0;
        at++;
        SKIP_SPACES
        if (at < size && text[at] == ']') return at + 1 == size; /* a trailing comma */
    }
#undef SKIP_SPACES
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
    uint8_t *out = out_data, *limit = out_data + capacity;
    out_offsets[0] = 0;
    for (int64_t row = 0; row < rows; row++) {
        if (present(validity, row)) {
            const uint8_t *text = data + offsets[row];
            int64_t size = offsets[row + 1] - offsets[row], count = 0;
            int read = simple_list(text, size, items, &count);
            if (read == 0 && quoted) read = quoted_items(text, size, items, &count);
            if (read != 1) return row;
            int64_t need = 2;
            for (int64_t i = 0; i < count; i++) need += 3 + 6 * (items[i].end - items[i].start);
            if (need > limit - out) return row;
            *out++ = '[';
            for (int64_t i = 0; i < count; i++) {
                if (i) *out++ = ',';
                out = json_write_string(out, text + items[i].start, items[i].end - items[i].start);
            }
            *out++ = ']';
        }
        out_offsets[row + 1] = (int32_t)(out - out_data);
    }
    return rows;
}
