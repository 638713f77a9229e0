/*
 * Synthetic keys of whole blocks of raw rows, outside Python: each row's BLAKE2b-128 digest
 * (RFC 7693) of the export's scope prefix and the row's values joined by the unit separator,
 * exactly what hashlib.blake2b(prefix, digest_size=16) updated with the joined row gives;
 * then the keys' text, the digest in hex with `~n` for the n-th repeat of a row.
 */
#include <stdint.h>
#include <string.h>

#define DIGEST_SIZE 16
#define BLOCK_SIZE 128
#define SEPARATOR 0x1f

typedef struct {
    uint64_t h[8];
    uint64_t t[2];
    uint8_t buffer[BLOCK_SIZE];
    size_t filled;
} blake2b_state;

static const uint64_t IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const uint8_t SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t rotate(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#define G(a, b, c, d, x, y)                                                                    \
    do {                                                                                       \
        v[a] = v[a] + v[b] + (x);                                                              \
        v[d] = rotate(v[d] ^ v[a], 32);                                                        \
        v[c] = v[c] + v[d];                                                                    \
        v[b] = rotate(v[b] ^ v[c], 24);                                                        \
        v[a] = v[a] + v[b] + (y);                                                              \
        v[d] = rotate(v[d] ^ v[a], 16);                                                        \
        v[c] = v[c] + v[d];                                                                    \
        v[b] = rotate(v[b] ^ v[c], 63);                                                        \
    } while (0)

static void compress(blake2b_state *s, const uint8_t *block, int last) {
    uint64_t v[16], m[16];
    for (int i = 0; i < 8; i++) {
        v[i] = s->h[i];
        v[i + 8] = IV[i];
    }
    v[12] ^= s->t[0];
    v[13] ^= s->t[1];
    if (last) v[14] = ~v[14];
    for (int i = 0; i < 16; i++) m[i] = load64(block + 8 * i);
    for (int round = 0; round < 12; round++) {
        const uint8_t *sigma = SIGMA[round];
        G(0, 4, 8, 12, m[sigma[0]], m[sigma[1]]);
        G(1, 5, 9, 13, m[sigma[2]], m[sigma[3]]);
        G(2, 6, 10, 14, m[sigma[4]], m[sigma[5]]);
        G(3, 7, 11, 15, m[sigma[6]], m[sigma[7]]);
        G(0, 5, 10, 15, m[sigma[8]], m[sigma[9]]);
        G(1, 6, 11, 12, m[sigma[10]], m[sigma[11]]);
        G(2, 7, 8, 13, m[sigma[12]], m[sigma[13]]);
        G(3, 4, 9, 14, m[sigma[14]], m[sigma[15]]);
    }
    for (int i = 0; i < 8; i++) s->h[i] ^= v[i] ^ v[i + 8];
}

static void init(blake2b_state *s) {
    for (int i = 0; i < 8; i++) s->h[i] = IV[i];
    s->h[0] ^= 0x01010000ULL ^ DIGEST_SIZE; /* no key, fanout 1, depth 1 */
    s->t[0] = s->t[1] = 0;
    s->filled = 0;
}

static void update(blake2b_state *s, const uint8_t *data, size_t size) {
    while (size > 0) {
        if (s->filled == BLOCK_SIZE) { /* a full block is compressed once more data comes */
            s->t[0] += BLOCK_SIZE;
            if (s->t[0] < BLOCK_SIZE) s->t[1]++;
            compress(s, s->buffer, 0);
            s->filled = 0;
        }
        size_t take = BLOCK_SIZE - s->filled;
        if (take > size) take = size;
        memcpy(s->buffer + s->filled, data, take);
        s->filled += take;
        data += take;
        size -= take;
    }
}

static void finish(blake2b_state *s, uint8_t *out) {
    s->t[0] += s->filled;
    if (s->t[0] < s->filled) s->t[1]++;
    memset(s->buffer + s->filled, 0, BLOCK_SIZE - s->filled);
    compress(s, s->buffer, 1);
    for (int i = 0; i < DIGEST_SIZE; i++) out[i] = (uint8_t)(s->h[i / 8] >> (8 * (i % 8)));
}

typedef struct {
    int64_t offset;         /* the Arrow array's offset, in elements */
    const int32_t *offsets; /* Arrow's value offsets (a string array without nulls) */
    const uint8_t *data;
} text_column;

/* The digest of each of rows rows into digests (DIGEST_SIZE bytes a row). */
void synthetic_digests(int64_t rows, int64_t count, const text_column *columns,
                       const uint8_t *prefix, int64_t prefix_size, uint8_t *digests) {
    static const uint8_t separator = SEPARATOR;
    blake2b_state state;
    for (int64_t row = 0; row < rows; row++) {
        init(&state);
        update(&state, prefix, (size_t)prefix_size);
        for (int64_t i = 0; i < count; i++) {
            const text_column *c = &columns[i];
            int64_t index = c->offset + row;
            if (i) update(&state, &separator, 1);
            update(&state, c->data + c->offsets[index],
                   (size_t)(c->offsets[index + 1] - c->offsets[index]));
        }
        finish(&state, digests + DIGEST_SIZE * row);
    }
}

/*
 * The keys' text: each digest in lowercase hex, then `~n` where repeats[row] is n > 0, into
 * out_offsets (rows + 1) and out_data (at most 32 + 21 bytes a row).
 */
void synthetic_keys_text(int64_t rows, const uint8_t *digests, const int64_t *repeats,
                         int32_t *out_offsets, uint8_t *out_data) {
    static const char HEX[] = "0123456789abcdef";
    uint8_t *out = out_data;
    out_offsets[0] = 0;
    for (int64_t row = 0; row < rows; row++) {
        const uint8_t *digest = digests + DIGEST_SIZE * row;
        for (int i = 0; i < DIGEST_SIZE; i++) {
            *out++ = (uint8_t)HEX[digest[i] >> 4];
            *out++ = (uint8_t)HEX[digest[i] & 15];
        }
        int64_t repeat = repeats[row];
        if (repeat > 0) {
            uint8_t digits[20];
            int size = 0;
            *out++ = '~';
            while (repeat) {
                digits[size++] = (uint8_t)('0' + repeat % 10);
                repeat /= 10;
            }
            while (size) *out++ = digits[--size];
        }
        out_offsets[row + 1] = (int32_t)(out - out_data);
    }
}
