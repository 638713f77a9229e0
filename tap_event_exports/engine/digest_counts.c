/*
 * Exact occurrence counts of the 16-byte digests of an export's rows (the `~n` of synthetic
 * keys), outside Python. Each distinct digest is kept once, in the order first seen, in pages
 * that never move, with its count beside it; an open-addressing index of their positions
 * (4 bytes a slot, at most half full) finds them again and is rebuilt at twice the size when
 * it fills. Pages and index are mappings of their own, given back whole. About 28-36 bytes a
 * distinct digest, as the Python counter.
 */
#define _DEFAULT_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
static void *map(size_t size) { return calloc(1, size); }
static void unmap(void *memory, size_t size) { (void)size; free(memory); }
#else
#include <sys/mman.h>
static void *map(size_t size) {
    void *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return memory == MAP_FAILED ? NULL : memory;
}
static void unmap(void *memory, size_t size) { munmap(memory, size); }
#endif

#define DIGEST_SIZE 16
#define PAGE_BITS 16
#define PAGE_ROWS ((int64_t)1 << PAGE_BITS)
#define FIRST_SLOTS 1024
#define MOST_DIGESTS ((int64_t)UINT32_MAX - 1) /* positions + 1 fit the index's 32 bits */

typedef struct {
    uint8_t **digests; /* pages of PAGE_ROWS digests */
    uint32_t **counts; /* pages of PAGE_ROWS occurrence counts */
    int64_t pages;
    int64_t page_room; /* entries of the two page tables */
    int64_t size;      /* distinct digests */
    uint32_t *index;   /* per slot: position + 1 of a digest, 0 when empty */
    uint64_t mask;     /* slots - 1 */
} digest_counts;

static inline uint64_t first_word(const uint8_t *digest) {
    uint64_t word;
    memcpy(&word, digest, sizeof word);
    return word;
}

static inline uint8_t *digest_at(const digest_counts *c, int64_t position) {
    return c->digests[position >> PAGE_BITS] + (position & (PAGE_ROWS - 1)) * DIGEST_SIZE;
}

static inline uint32_t *count_at(const digest_counts *c, int64_t position) {
    return c->counts[position >> PAGE_BITS] + (position & (PAGE_ROWS - 1));
}

static int grow_index(digest_counts *c) {
    uint64_t slots = (c->mask + 1) * 2, mask = slots - 1;
    uint32_t *index = map(slots * sizeof *index);
    if (index == NULL) return -1;
    for (int64_t position = 0; position < c->size; position++) {
        uint64_t slot = first_word(digest_at(c, position)) & mask;
        while (index[slot]) slot = (slot + 1) & mask;
        index[slot] = (uint32_t)(position + 1);
    }
    unmap(c->index, (c->mask + 1) * sizeof *index);
    c->index = index;
    c->mask = mask;
    return 0;
}

static int add_page(digest_counts *c) {
    if (c->pages == c->page_room) {
        int64_t room = c->page_room ? 2 * c->page_room : 16;
        uint8_t **digests = realloc(c->digests, room * sizeof *digests);
        if (digests == NULL) return -1;
        c->digests = digests;
        uint32_t **counts = realloc(c->counts, room * sizeof *counts);
        if (counts == NULL) return -1;
        c->counts = counts;
        c->page_room = room;
    }
    uint8_t *digests = map(PAGE_ROWS * DIGEST_SIZE);
    uint32_t *counts = map(PAGE_ROWS * sizeof *counts);
    if (digests == NULL || counts == NULL) {
        if (digests != NULL) unmap(digests, PAGE_ROWS * DIGEST_SIZE);
        if (counts != NULL) unmap(counts, PAGE_ROWS * sizeof *counts);
        return -1;
    }
    c->digests[c->pages] = digests;
    c->counts[c->pages] = counts;
    c->pages++;
    return 0;
}

void digest_counts_free(void *handle) {
    digest_counts *c = handle;
    if (c == NULL) return;
    for (int64_t page = 0; page < c->pages; page++) {
        unmap(c->digests[page], PAGE_ROWS * DIGEST_SIZE);
        unmap(c->counts[page], PAGE_ROWS * sizeof **c->counts);
    }
    free(c->digests);
    free(c->counts);
    if (c->index != NULL) unmap(c->index, (c->mask + 1) * sizeof *c->index);
    free(c);
}

/* A counter with no digest yet; NULL when memory runs out. */
void *digest_counts_new(void) {
    digest_counts *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->index = map(FIRST_SLOTS * sizeof *c->index);
    if (c->index == NULL) {
        free(c);
        return NULL;
    }
    c->mask = FIRST_SLOTS - 1;
    return c;
}

/*
 * Count `rows` concatenated digests in order: before[i] is how many times digest i occurred
 * before it (0: new). Returns how many of them had occurred before, or -1 when memory runs out
 * or the export has more distinct rows than positions (the digests counted so far stay).
 */
int64_t digest_counts_add(void *handle, int64_t rows, const uint8_t *digests, int64_t *before) {
    digest_counts *c = handle;
    int64_t repeats = 0;
    for (int64_t row = 0; row < rows; row++) {
        const uint8_t *digest = digests + row * DIGEST_SIZE;
        if ((uint64_t)(c->size + 1) * 2 > c->mask + 1 && grow_index(c) != 0) return -1;
        uint64_t slot = first_word(digest) & c->mask;
        uint32_t entry;
        while ((entry = c->index[slot]) != 0) {
            if (memcmp(digest_at(c, entry - 1), digest, DIGEST_SIZE) == 0) break;
            slot = (slot + 1) & c->mask;
        }
        if (entry != 0) {
            uint32_t *count = count_at(c, entry - 1);
            before[row] = *count;
            *count += 1;
            repeats++;
            continue;
        }
        if (c->size >= MOST_DIGESTS) return -1;
        if ((c->size >> PAGE_BITS) == c->pages && add_page(c) != 0) return -1;
        memcpy(digest_at(c, c->size), digest, DIGEST_SIZE);
        *count_at(c, c->size) = 1;
        c->index[slot] = (uint32_t)(c->size + 1);
        c->size++;
        before[row] = 0;
    }
    return repeats;
}
