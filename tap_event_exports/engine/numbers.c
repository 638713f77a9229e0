/*
 * Number and integer columns read from their text, for the columnar reader's bulk typing.
 *
 * A value must have the form the columnar reader accepts (columnar.py's NUMBER and INTEGER).
 * Numbers are the correctly rounded double, as Arrow's cast gives: one IEEE operation where
 * that rounds correctly (Clinger's fast path: at most 2^53 as digits, a power of ten up to
 * 10^22), the C library's strtod for the rest. Integers are always exact. At the first value
 * outside the forms the reader stops and returns its row: the caller then types the column
 * with Arrow's kernels as before.
 *
 * For RECORD messages, number columns are also written straight to the JSON the record reader
 * gives them (numbers_json), instead of being typed and encoded once per distinct value.
 */
#include <float.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXACT_MANTISSA (1ULL << 53)

static inline int present(const uint8_t *validity, int64_t row) {
    return validity == NULL || ((validity[row >> 3] >> (row & 7)) & 1);
}

static inline int digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* -?[0-9]{1,20}(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})? read into `value`; 0 outside. */
static int read_number(const uint8_t *text, int64_t size, double *value) {
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
    (void)text, (void)size, (void)value;
    return 0; /* wider intermediate precision would round twice */
#else
    static const double powers[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    int64_t at = 0;
    int negative = 0;
    if (at < size && text[at] == '-') negative = 1, at++;
    uint64_t mantissa = 0;
    int64_t whole = 0, fraction = 0;
    int overflow = 0;
    for (; at < size && digit(text[at]); at++, whole++) {
        if (mantissa > (EXACT_MANTISSA - 9) / 10) overflow = 1;
        mantissa = mantissa * 10 + (uint64_t)(text[at] - '0');
    }
    if (whole < 1 || whole > 20) return 0;
    if (at < size && text[at] == '.') {
        at++;
        for (; at < size && digit(text[at]); at++, fraction++) {
            if (mantissa > (EXACT_MANTISSA - 9) / 10) overflow = 1;
            mantissa = mantissa * 10 + (uint64_t)(text[at] - '0');
        }
        if (fraction < 1 || fraction > 20) return 0;
    }
    int64_t exponent = 0;
    if (at < size && (text[at] == 'e' || text[at] == 'E')) {
        at++;
        int exponent_negative = 0;
        if (at < size && (text[at] == '+' || text[at] == '-'))
            exponent_negative = text[at] == '-', at++;
        int64_t digits = 0;
        for (; at < size && digit(text[at]); at++) {
            if (++digits > 2) return 0;
            exponent = exponent * 10 + (text[at] - '0');
        }
        if (digits < 1) return 0;
        if (exponent_negative) exponent = -exponent;
    }
    if (at != size) return 0;
    int64_t power = exponent - fraction;
    double result;
    if (overflow || mantissa > EXACT_MANTISSA || power < -22 || power > 22) {
        /* the C library's strtod rounds correctly too; the form has at most 46 bytes, and a
         * locale whose decimal point is not '.' stops it early: then Arrow reads the column */
        char copy[64];
        char *end;
        memcpy(copy, text, (size_t)size);
        copy[size] = 0;
        result = strtod(copy, &end);
        if (end != copy + size) return 0;
    } else {
        result = (double)mantissa;
        result = power >= 0 ? result * powers[power] : result / powers[-power];
        if (negative) result = -result;
    }
    *value = result == 0 ? 0.0 : result; /* -0 is 0 */
    return 1;
#endif
}

/* -?[0-9]{1,18} read into `value`; 0 outside. */
static int read_integer(const uint8_t *text, int64_t size, int64_t *value) {
    int64_t at = 0, number = 0;
    int negative = 0;
    if (at < size && text[at] == '-') negative = 1, at++;
    int64_t digits = 0;
    for (; at < size && digit(text[at]); at++) {
        if (++digits > 18) return 0; /* 18 digits always fit */
        number = number * 10 + (text[at] - '0');
    }
    if (at != size || digits < 1) return 0;
    *value = negative ? -number : number;
    return 1;
}

/* Each present value of a string column (`validity` NULL: all present) as an int64 (with
 * `integers`) or a double in `out`, 0 where null. Returns `rows`, or the row of the first value
 * it cannot read exactly. */
int64_t numbers_read(int64_t rows, const uint8_t *validity, const int32_t *offsets,
                     const uint8_t *data, int32_t integers, void *out) {
    int64_t *whole = out;
    double *real = out;
    for (int64_t row = 0; row < rows; row++) {
        const uint8_t *text = data + offsets[row];
        int64_t size = offsets[row + 1] - offsets[row];
        if (integers) {
            whole[row] = 0;
            if (present(validity, row) && !read_integer(text, size, &whole[row])) return row;
        } else {
            real[row] = 0.0;
            if (present(validity, row) && !read_number(text, size, &real[row])) return row;
        }
    }
    return rows;
}

/* A decimal of more than 16 characters: a Decimal, which msgspec writes as str() gives it. Left
 * as written where that is its own text: no leading zeros before the point (but a lone 0), and
 * no more than five zeros between the point and the first digit (str() turns to an exponent
 * below that); 0 outside. `whole` and `fraction` are where the digits after the sign start
 * and where those after the point start. */
static int64_t decimal_json(const uint8_t *text, int64_t size, int negative, int64_t whole,
                            int64_t fraction, uint8_t *out) {
    if (whole != negative) return 0; /* leading zeros: str() drops them */
    if (fraction - whole == 2 && text[whole] == '0') {
        int64_t zeros = 0;
        while (fraction + zeros < size && text[fraction + zeros] == '0') zeros++;
        if (zeros > 5) return 0; /* 0.000000123... or zero: 1.23E-7, 0E-17 */
    }
    memcpy(out, text, (size_t)size);
    return size;
}

/* The JSON the record reader writes for one value of a number column (converters.to_number,
 * then msgspec), written to `out`. Three forms: -?[0-9]+ with at most 18 digits after its
 * leading zeros (an integer: leading zeros dropped, -0 is 0); -?[0-9]+\.[0-9]+ of at most 16
 * characters (a float of at most 15 digits, which prints back as those digits, trailing zeros
 * dropped) that msgspec writes in fixed notation (at most four zeros between the point and the
 * first digit); and longer decimals that decimal_json leaves as written. Returns the bytes
 * written, 0 outside the forms. */
static int64_t number_json(const uint8_t *text, int64_t size, uint8_t *out) {
    int negative = size > 0 && text[0] == '-';
    int64_t at = negative, whole = at;
    while (at < size && digit(text[at])) at++;
    int64_t whole_end = at, written = 0;
    if (whole_end == whole) return 0;
    while (whole < whole_end - 1 && text[whole] == '0') whole++;
    int zero = whole_end - whole == 1 && text[whole] == '0';
    if (at == size) {
        if (whole_end - whole > 18) return 0; /* 18 digits always fit */
        if (negative && !zero) out[written++] = '-';
        memcpy(out + written, text + whole, (size_t)(whole_end - whole));
        return written + whole_end - whole;
    }
    if (text[at] != '.') return 0;
    int64_t fraction = ++at;
    while (at < size && digit(text[at])) at++;
    if (at != size || at == fraction) return 0;
    if (size > 16) return decimal_json(text, size, negative, whole, fraction, out);
    int64_t fraction_end = size;
    while (fraction_end > fraction && text[fraction_end - 1] == '0') fraction_end--;
    if (zero && fraction_end > fraction) {
        int64_t zeros = 0;
        while (text[fraction + zeros] == '0') zeros++;
        if (zeros > 4) return 0; /* 0.000001 and below: msgspec writes 1e-6 */
    }
    if (negative) out[written++] = '-';
    memcpy(out + written, text + whole, (size_t)(whole_end - whole));
    written += whole_end - whole;
    out[written++] = '.';
    if (fraction_end == fraction) {
        out[written++] = '0';
    } else {
        memcpy(out + written, text + fraction, (size_t)(fraction_end - fraction));
        written += fraction_end - fraction;
    }
    return written;
}

/* Each present value of a number column as the JSON the record reader writes for it (see
 * number_json): an Arrow string column's offsets and text in `out_offsets` and `out_data`
 * (nulls stay empty; no value's JSON is longer than its text). Returns `rows`, or the row of
 * the first value outside the forms. */
int64_t numbers_json(int64_t rows, const uint8_t *validity, const int32_t *offsets,
                     const uint8_t *data, int32_t *out_offsets, uint8_t *out_data) {
    static const uint8_t empty[1] = {0};
    int32_t used = 0;
    if (data == NULL) data = empty; /* every present value is empty text */
    out_offsets[0] = 0;
    for (int64_t row = 0; row < rows; row++) {
        if (present(validity, row)) {
            int64_t written = number_json(data + offsets[row], offsets[row + 1] - offsets[row],
                                          out_data + used);
            if (written == 0) return row;
            used += (int32_t)written;
        }
        out_offsets[row + 1] = used;
    }
    return rows;
}
