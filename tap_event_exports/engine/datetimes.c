/*
 * Date-time text columns to RFC 3339 UTC text, for the forms exports use, outside Python.
 *
 * The forms are those of arrow_datetimes.py: `2025.1.6 10:35` and `2025-01-06 10:38:10.036`
 * (local times), the ISO form ending in `Z` or `+09:00`, and unix seconds or milliseconds
 * (instants). Parsing gives each value's microseconds, as an instant or as a local wall-clock
 * time; the caller then finds its zone's offset for each local hour and rendering writes
 * Python's `isoformat` of the UTC time. A value outside these exact forms, or out of range,
 * stops the call at its row: the caller then types the column another way. Arrow string
 * arrays are read and written as they are (offset 0).
 */
#include <stdint.h>
#include <string.h>

#define US_PER_SECOND 1000000LL
#define US_PER_MINUTE 60000000LL
#define US_PER_HOUR 3600000000LL
#define US_PER_DAY 86400000000LL
#define MILLIS_FROM 100000000000LL /* unix numbers above this are milliseconds */
#define NOT_ONE_OFFSET INT64_MIN   /* an hour whose UTC offset is not one value */
#define RENDERED_MAX 32            /* 2025-01-06T10:38:10.036000+00:00 */

enum kind { ABSENT = 0, INSTANT = 1, LOCAL = 2 };

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t year, int64_t month, int64_t day) {
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    int64_t year_of_era = year - era * 400;
    int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

static void civil_from_days(int64_t days, int64_t *year, int64_t *month, int64_t *day) {
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t day_of_era = days - era * 146097;
    int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t shifted = (5 * day_of_year + 2) / 153;
    *day = day_of_year - (153 * shifted + 2) / 5 + 1;
    *month = shifted < 10 ? shifted + 3 : shifted - 9;
    *year = year_of_era + era * 400 + (*month <= 2);
}

static int days_in_month(int64_t year, int64_t month) {
    static const int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return DAYS[month - 1] + (month == 2 && leap);
}

static inline int digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* `count` ASCII digits at text as a number; -1 if one is not a digit. */
static int64_t number(const uint8_t *text, int64_t count) {
    int64_t value = 0;
    for (int64_t i = 0; i < count; i++) {
        if (!digit(text[i])) return -1;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

/* 1 or 2 digits at text[*at], up to a byte that is not a digit; -1 if none or three. */
static int64_t short_number(const uint8_t *text, int64_t size, int64_t *at) {
    int64_t start = *at;
    while (*at < size && *at - start < 3 && digit(text[*at])) (*at)++;
    int64_t count = *at - start;
    return count == 1 || count == 2 ? number(text + start, count) : -1;
}

static int wall_micros(int64_t year, int64_t month, int64_t day, int64_t hour, int64_t minute,
                       int64_t second, int64_t micro, int64_t *out) {
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 59)
        return 0;
    *out = days_from_civil(year, month, day) * US_PER_DAY + hour * US_PER_HOUR +
           minute * US_PER_MINUTE + second * US_PER_SECOND + micro;
    return 1;
}

/* `2025.1.6 10:35`: year, month and day, hour and two-digit minute; a local time. */
static int parse_dotted(const uint8_t *text, int64_t size, int64_t *micros) {
    int64_t at = 5, year = number(text, 4);
    if (year < 0 || text[4] != '.') return 0;
    int64_t month = short_number(text, size, &at);
    if (month < 0 || at >= size || text[at++] != '.') return 0;
    int64_t day = short_number(text, size, &at);
    if (day < 0 || at >= size || text[at++] != ' ') return 0;
    int64_t hour = short_number(text, size, &at);
    if (hour < 0 || at >= size || text[at++] != ':' || size - at != 2) return 0;
    int64_t minute = number(text + at, 2);
    return minute >= 0 && wall_micros(year, month, day, hour, minute, 0, 0, micros);
}

/* `2025-01-06[T ]10:38:10[.f{1,6}][Z|+09:00]`: a local time, or an instant with its offset. */
static int parse_iso(const uint8_t *text, int64_t size, int64_t *micros, int *kind) {
    if (size < 19 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != ' ') ||
        text[13] != ':' || text[16] != ':')
        return 0;
    int64_t year = number(text, 4), month = number(text + 5, 2), day = number(text + 8, 2);
    int64_t hour = number(text + 11, 2), minute = number(text + 14, 2);
    int64_t second = number(text + 17, 2);
    if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return 0;
    int64_t at = 19, micro = 0;
    if (at < size && text[at] == '.') {
        int64_t start = ++at, scale = 100000;
        while (at < size && digit(text[at]) && at - start < 7) {
            micro += (text[at++] - '0') * scale;
            scale /= 10;
        }
        if (at == start || at - start > 6) return 0;
    }
    if (!wall_micros(year, month, day, hour, minute, second, micro, micros)) return 0;
    if (at == size) {
        *kind = LOCAL;
        return 1;
    }
    *kind = INSTANT;
    if (size - at == 1 && text[at] == 'Z') return 1;
    if (size - at != 6 || (text[at] != '+' && text[at] != '-') || text[at + 3] != ':') return 0;
    int64_t offset_hours = number(text + at + 1, 2), offset_minutes = number(text + at + 4, 2);
    if (offset_hours < 0 || offset_hours > 23 || offset_minutes < 0 || offset_minutes > 59)
        return 0;
    int64_t offset = offset_hours * US_PER_HOUR + offset_minutes * US_PER_MINUTE;
    *micros -= text[at] == '+' ? offset : -offset;
    return 1;
}

/* Unix seconds, or milliseconds above MILLIS_FROM: 1 to 18 digits; an instant. */
static int parse_unix(const uint8_t *text, int64_t size, int64_t last_us, int64_t *micros) {
    if (size < 1 || size > 18) return 0;
    int64_t value = number(text, size);
    if (value < 0) return 0;
    if (value > MILLIS_FROM) {
        if (value > last_us / 1000) return 0;
        *micros = value * 1000;
    } else {
        *micros = value * US_PER_SECOND;
    }
    return 1;
}

static inline int present(const uint8_t *validity, int64_t row) {
    return validity == NULL || ((validity[row >> 3] >> (row & 7)) & 1);
}

/*
 * Reads rows values of a string array: micros[row] and kinds[row] (ABSENT for nulls). hours
 * gets the first and last local hour (hours[0] > hours[1] when there is no local time).
 * Returns rows, or the first row whose value is outside the forms (or a local time before
 * 1970, whose hour would not floor).
 */
int64_t datetimes_parse(int64_t rows, const uint8_t *validity, const int32_t *offsets,
                        const uint8_t *data, int64_t last_us, int64_t *micros, uint8_t *kinds,
                        int64_t *hours) {
    hours[0] = INT64_MAX;
    hours[1] = INT64_MIN;
    for (int64_t row = 0; row < rows; row++) {
        if (!present(validity, row)) {
            kinds[row] = ABSENT;
            micros[row] = 0;
            continue;
        }
        const uint8_t *text = data + offsets[row];
        int64_t size = offsets[row + 1] - offsets[row];
        int kind = INSTANT, ok;
        if (size >= 5 && text[4] == '.') {
            ok = parse_dotted(text, size, &micros[row]);
            kind = LOCAL;
        } else if (size >= 19 && text[4] == '-') {
            ok = parse_iso(text, size, &micros[row], &kind);
        } else {
            ok = parse_unix(text, size, last_us, &micros[row]);
        }
        if (!ok) return row;
        kinds[row] = (uint8_t)kind;
        if (kind == LOCAL) {
            if (micros[row] < 0) return row;
            int64_t hour = micros[row] / US_PER_HOUR;
            if (hour < hours[0]) hours[0] = hour;
            if (hour > hours[1]) hours[1] = hour;
        }
    }
    return rows;
}

static uint8_t *two_digits(uint8_t *out, int64_t value) {
    out[0] = (uint8_t)('0' + value / 10);
    out[1] = (uint8_t)('0' + value % 10);
    return out + 2;
}

/*
 * Writes each parsed value as `2025-01-06T01:35:00+00:00` (`...:10.036000+00:00` with
 * microseconds): local times shifted by shifts[hour - first_hour] (NULL: no shift), into
 * out_offsets (rows + 1) and out_data (RENDERED_MAX bytes a row). Returns rows, or the first
 * row whose hour has no single offset or whose UTC time is outside [first_us, last_us].
 */
int64_t datetimes_render(int64_t rows, const int64_t *micros, const uint8_t *kinds,
                         const int64_t *shifts, int64_t first_hour, int64_t hour_count,
                         int64_t first_us, int64_t last_us, int32_t *out_offsets,
                         uint8_t *out_data) {
    uint8_t *out = out_data;
    out_offsets[0] = 0;
    for (int64_t row = 0; row < rows; row++) {
        if (kinds[row] != ABSENT) {
            int64_t utc = micros[row];
            if (kinds[row] == LOCAL && shifts != NULL) {
                int64_t index = utc / US_PER_HOUR - first_hour;
                if (index < 0 || index >= hour_count || shifts[index] == NOT_ONE_OFFSET)
                    return row;
                utc -= shifts[index];
            }
            if (utc < first_us || utc > last_us) return row;
            int64_t days = utc >= 0 ? utc / US_PER_DAY : -((-utc - 1) / US_PER_DAY) - 1;
            int64_t rest = utc - days * US_PER_DAY, year, month, day;
            civil_from_days(days, &year, &month, &day);
            out = two_digits(two_digits(out, year / 100), year % 100);
            *out++ = '-';
            out = two_digits(out, month);
            *out++ = '-';
            out = two_digits(out, day);
            *out++ = 'T';
            out = two_digits(out, rest / US_PER_HOUR);
            *out++ = ':';
            out = two_digits(out, rest / US_PER_MINUTE % 60);
            *out++ = ':';
            out = two_digits(out, rest / US_PER_SECOND % 60);
            int64_t micro = rest % US_PER_SECOND;
            if (micro) {
                *out++ = '.';
                for (int64_t scale = 100000; scale; scale /= 10) *out++ = (uint8_t)('0' + micro / scale % 10);
            }
            memcpy(out, "+00:00", 6);
            out += 6;
        }
        out_offsets[row + 1] = (int32_t)(out - out_data);
    }
    return rows;
}
