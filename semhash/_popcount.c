/* Exact Hamming top-k: XOR + popcount over cached blocks, top-k by counting distances.
 *
 * The same algorithm as semhash/index/popcount.py (its docstring explains it), in C
 * with kernels for each x86-64 CPU: AVX-512 VPOPCNTDQ tests 8 codes an instruction,
 * AVX2 4 (popcount by nibble lookup), POPCNT and portable C one.  The fastest the CPU
 * runs is chosen at import; use() switches, so every path can be tested on one machine.  One call answers
 * a range of queries over a range of codes and releases the GIL; Python runs one call
 * per core.  Codes are 1 or 2 little-endian uint64 words; queries come padded to a
 * multiple of GROUP unless there is only one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#define GROUP 8
#define CHUNK 64
#define BLOCK 4096
#define MAX_BITS 128
#define SELECT_SHARE 16 /* k of at least 1/16 of the codes: select by a distance histogram */

typedef struct {
    int64_t *pos;    /* candidate buffer, position order until compacted */
    int32_t *dist;
    int64_t *counts; /* candidates buffered at each distance */
    int64_t fill, bound, below;
} Selection;

typedef struct {
    int64_t k, cap, n_bits;
    int64_t *histogram, *scratch_pos;
    int32_t *scratch_dist;
} Work;

/* Keep the best k buffered candidates, sorted by (distance, position): stable counting sort. */
static int64_t compact(Selection *s, const Work *w) {
    int64_t *h = w->histogram;
    memset(h, 0, sizeof(int64_t) * (w->n_bits + 2));
    for (int64_t i = 0; i < s->fill; i++) h[s->dist[i] + 1]++;
    for (int64_t d = 1; d <= w->n_bits + 1; d++) h[d] += h[d - 1];
    for (int64_t i = 0; i < s->fill; i++) {
        int64_t slot = h[s->dist[i]]++;
        if (slot < w->k) {
            w->scratch_pos[slot] = s->pos[i];
            w->scratch_dist[slot] = s->dist[i];
        }
    }
    int64_t kept = s->fill < w->k ? s->fill : w->k;
    memcpy(s->pos, w->scratch_pos, sizeof(int64_t) * kept);
    memcpy(s->dist, w->scratch_dist, sizeof(int32_t) * kept);
    return kept;
}

/* Buffer one code; keep the bound one below the k-th smallest buffered distance. */
static inline __attribute__((always_inline)) void offer(Selection *s, const Work *w,
                                                      int64_t position, int64_t d) {
    if (d > s->bound) return;
    s->pos[s->fill] = position;
    s->dist[s->fill] = (int32_t)d;
    s->fill++;
    s->counts[d]++;
    s->below++;
    while (s->below >= w->k) s->below -= s->counts[s->bound--];
    if (s->fill == w->cap) {
        s->fill = compact(s, w);
        memset(s->counts, 0, sizeof(int64_t) * (w->n_bits + 1));
        s->below = 0;
        for (int64_t i = 0; i < s->fill; i++) {
            s->counts[s->dist[i]]++;
            s->below += s->dist[i] <= s->bound;
        }
    }
}

static inline __attribute__((always_inline)) int64_t distance(const uint64_t *q,
                                                             const uint64_t *c, int words) {
    int64_t d = __builtin_popcountll(q[0] ^ c[0]);
    if (words == 2) d += __builtin_popcountll(q[1] ^ c[1]);
    return d;
}

/* ---- scalar kernels: portable C, and the same compiled for the POPCNT instruction ---- */

#define SCALAR_SCAN(name)                                                                   \
    static void name(const uint64_t *queries, int g, const uint64_t *codes, int words,      \
                     int64_t c0, int64_t c1, int64_t offset, Selection *sel,                \
                     const Work *w) {                                                       \
        for (int i = 0; i < g; i++) {                                                       \
            const uint64_t *q = queries + (int64_t)i * words;                               \
            int64_t within = 0, bound = sel[i].bound;                                       \
            for (int64_t j = c0; j < c1; j++)                                               \
                within += distance(q, codes + j * words, words) <= bound;                   \
            if (!within) continue;                                                          \
            for (int64_t j = c0; j < c1; j++)                                               \
                offer(&sel[i], w, offset + j, distance(q, codes + j * words, words));       \
        }                                                                                   \
    }

SCALAR_SCAN(scan_chunk_portable)

/* Write the ``taken`` codes ``kept`` (positions, increasing) in (distance, position) order,
 * distances from ``near``, none above ``top``: four quarters of them at once, each with
 * its own slots, so that runs of one distance do not wait on one counter. */
static void place(const uint8_t *near, const int64_t *kept, int64_t taken, int64_t top,
                  int64_t offset, int64_t *out_pos, int32_t *out_dist) {
    int64_t quarter = taken / 4, slots[4][MAX_BITS + 2];
    const int64_t *part[4] = {kept, kept + quarter, kept + 2 * quarter, kept + 3 * quarter};
    memset(slots, 0, sizeof(slots));
    for (int64_t i = 0; i < quarter; i++)
        for (int p = 0; p < 4; p++) slots[p][near[part[p][i]]]++;
    for (int64_t i = 4 * quarter; i < taken; i++) slots[3][near[kept[i]]]++;
    for (int64_t d = 0, start = 0; d <= top; d++)
        for (int p = 0; p < 4; p++) { /* counts become first slots */
            int64_t count = slots[p][d];
            slots[p][d] = start;
            start += count;
        }
    for (int64_t i = 0; i < quarter; i++)
        for (int p = 0; p < 4; p++) {
            int64_t jj = part[p][i], d = near[jj], at = slots[p][d]++;
            out_pos[at] = offset + jj;
            out_dist[at] = (int32_t)d;
        }
    for (int64_t i = 4 * quarter; i < taken; i++) {
        int64_t jj = kept[i], d = near[jj], at = slots[3][d]++;
        out_pos[at] = offset + jj;
        out_dist[at] = (int32_t)d;
    }
}

/* A k that is a large share of the codes (a re-ranker's candidates): the buffer would take
 * nearly every code, so count the distances instead (four interleaved histograms, so that
 * runs of one distance do not wait on each other's increments), keep every code below the
 * k-th one's distance and, in position order, enough of those at it (without a branch per
 * code), then place the kept by distance.  ``near`` holds n distances and ``kept`` k + 1
 * positions.  Writes the k (or fewer, within ``bound``) best of one query in (distance,
 * position) order; returns how many. */
#define HISTOGRAM_SELECT(name)                                                              \
    static int64_t name(const uint64_t *q, const uint64_t *codes, int words, int64_t n,     \
                        int64_t k, int64_t bound, int64_t offset, uint8_t *near,            \
                        int64_t *kept, int64_t *out_pos, int32_t *out_dist) {               \
        int64_t counts[4][MAX_BITS + 2];                                                    \
        memset(counts, 0, sizeof(counts));                                                  \
        for (int64_t j = 0; j < n; j++) {                                                   \
            int64_t d = distance(q, codes + j * words, words);                              \
            near[j] = (uint8_t)d;                                                           \
            counts[j & 3][d]++;                                                             \
        }                                                                                   \
        int64_t below = 0, cut = 0;                                                         \
        while (cut <= bound) {                                                              \
            int64_t here = counts[0][cut] + counts[1][cut] + counts[2][cut] + counts[3][cut]; \
            if (below + here >= k) break;                                                   \
            below += here, cut++;                                                           \
        }                                                                                   \
        int64_t at_cut = cut <= bound ? k - below : 0, taken = 0;                           \
        for (int64_t j = 0; j < n; j++) { /* position order, a branch-free step each */     \
            int64_t d = near[j], at = (d == cut) & (at_cut > 0);                            \
            kept[taken] = j;                                                                \
            taken += (d < cut) | at;                                                        \
            at_cut -= at;                                                                   \
        }                                                                                   \
        place(near, kept, taken, cut <= bound ? cut : bound, offset, out_pos, out_dist);    \
        return taken;                                                                       \
    }

HISTOGRAM_SELECT(select_portable)

#ifdef HAVE_X86
/* Without -mpopcnt, __builtin_popcountll is a table routine; with the target attribute
 * (and the helpers inlined into it) it is one instruction. */
__attribute__((target("popcnt"))) SCALAR_SCAN(scan_chunk_popcnt)
__attribute__((target("popcnt"))) HISTOGRAM_SELECT(select_popcnt)

/* ---- AVX2 kernel: 4 codes per vector, popcount by nibble lookup ---------------------- */

/* Each byte's popcount, by nibble lookup. */
__attribute__((target("avx2"))) static inline __m256i byte_counts(__m256i x) {
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i nibble = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(x, nibble));
    __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble));
    return _mm256_add_epi8(lo, hi);
}

__attribute__((target("avx2"))) static inline __m256i popcount4(__m256i x) {
    return _mm256_sad_epu8(byte_counts(x), _mm256_setzero_si256()); /* per uint64 */
}

/* Distances of 4 codes from j (in some order): one word each, or two (low and high,
 * whose byte counts, at most 16 a byte, are added before one sum per code). */
__attribute__((target("avx2"))) static inline __m256i distances4(__m256i q0, __m256i q1,
                                                                   const uint64_t *codes,
                                                                   int64_t j, int words) {
    if (words == 1)
        return popcount4(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(codes + j)), q0));
    __m256i a = _mm256_loadu_si256((const __m256i *)(codes + 2 * j));
    __m256i b = _mm256_loadu_si256((const __m256i *)(codes + 2 * j + 4));
    __m256i lo = _mm256_unpacklo_epi64(a, b), hi = _mm256_unpackhi_epi64(a, b);
    __m256i counts = _mm256_add_epi8(byte_counts(_mm256_xor_si256(lo, q0)),
                                     byte_counts(_mm256_xor_si256(hi, q1)));
    return _mm256_sad_epu8(counts, _mm256_setzero_si256());
}

__attribute__((target("avx2,popcnt")))
static void scan_chunk_avx2(const uint64_t *queries, int g, const uint64_t *codes, int words,
                            int64_t c0, int64_t c1, int64_t offset, Selection *sel,
                            const Work *w) {
    if (c1 - c0 != CHUNK) { /* a block's ragged end */
        scan_chunk_popcnt(queries, g, codes, words, c0, c1, offset, sel, w);
        return;
    }
    __m256i q0[GROUP], q1[GROUP], limit[GROUP], any[GROUP];
    for (int i = 0; i < g; i++) {
        q0[i] = _mm256_set1_epi64x((long long)queries[(int64_t)i * words]);
        q1[i] = _mm256_set1_epi64x(words == 2 ? (long long)queries[(int64_t)i * words + 1] : 0);
        limit[i] = _mm256_set1_epi64x(sel[i].bound + 1); /* within: limit > distance */
        any[i] = _mm256_setzero_si256();
    }
    for (int64_t j = c0; j < c1; j += 4) {
        if (words == 1) {
            __m256i c = _mm256_loadu_si256((const __m256i *)(codes + j));
            for (int i = 0; i < g; i++)
                any[i] = _mm256_or_si256(
                    any[i], _mm256_cmpgt_epi64(limit[i], popcount4(_mm256_xor_si256(c, q0[i]))));
        } else {
            for (int i = 0; i < g; i++)
                any[i] = _mm256_or_si256(
                    any[i], _mm256_cmpgt_epi64(limit[i], distances4(q0[i], q1[i], codes, j, 2)));
        }
    }
    for (int i = 0; i < g; i++) {
        if (_mm256_testz_si256(any[i], any[i])) continue;
        const uint64_t *q = queries + (int64_t)i * words;
        for (int64_t j = c0; j < c1; j++)
            offer(&sel[i], w, offset + j, distance(q, codes + j * words, words));
    }
}

/* How many of the n distances in ``near`` are at most ``t`` (32 a step). */
__attribute__((target("avx2,popcnt")))
static int64_t at_most_avx2(const uint8_t *near, int64_t n, int64_t t) {
    const __m256i limit = _mm256_set1_epi8((char)t);
    int64_t count = 0, j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256i d = _mm256_loadu_si256((const __m256i *)(near + j));
        uint32_t within = (uint32_t)_mm256_movemask_epi8(
            _mm256_cmpeq_epi8(_mm256_max_epu8(d, limit), limit)); /* d <= t, unsigned */
        count += __builtin_popcount(within);
    }
    for (; j < n; j++) count += near[j] <= t;
    return count;
}

static int64_t select_by_bytes(const uint8_t *near, int64_t n, int64_t k, int64_t bound,
                               int64_t offset, int64_t *kept, int64_t *out_pos,
                               int32_t *out_dist);

/* HISTOGRAM_SELECT's work with vectors: each code's distance written as a byte (see
 * below), then select_by_bytes. */
__attribute__((target("avx2,popcnt")))
static int64_t select_avx2(const uint64_t *q, const uint64_t *codes, int words, int64_t n,
                           int64_t k, int64_t bound, int64_t offset, uint8_t *near,
                           int64_t *kept, int64_t *out_pos, int32_t *out_dist) {
    const __m256i q0 = _mm256_set1_epi64x((long long)q[0]);
    const __m256i q1 = _mm256_set1_epi64x(words == 2 ? (long long)q[1] : 0);
    /* Sixteen distances a step, as bytes in position order: four vectors' sums (distances4
     * lanes hold codes 0 1 2 3, or 0 2 1 3 with two words) are shifted into the bytes of
     * one vector, whose 4 x 4 bytes are then transposed. */
    const int perm[4] = {0, words == 2 ? 2 : 1, words == 2 ? 1 : 2, 3};
    char order[16];
    for (int m = 0; m < 16; m++) order[m] = (char)(4 * perm[m % 4] + m / 4);
    const __m128i transpose = _mm_loadu_si128((const __m128i *)order);
    const __m256i gather = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256i packed = _mm256_or_si256(
            _mm256_or_si256(distances4(q0, q1, codes, j, words),
                            _mm256_slli_epi64(distances4(q0, q1, codes, j + 4, words), 8)),
            _mm256_or_si256(_mm256_slli_epi64(distances4(q0, q1, codes, j + 8, words), 16),
                            _mm256_slli_epi64(distances4(q0, q1, codes, j + 12, words), 24)));
        __m128i low = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(packed, gather));
        _mm_storeu_si128((__m128i *)(near + j), _mm_shuffle_epi8(low, transpose));
    }
    for (; j < n; j++) near[j] = (uint8_t)distance(q, codes + j * words, words);
    return select_by_bytes(near, n, k, bound, offset, kept, out_pos, out_dist);
}

/* The k (or fewer, within ``bound``) best of the n distances in ``near``, in (distance,
 * position) order; returns how many.  No histogram: the cut is found by counting the
 * bytes, and the kept codes are read off 32-bit masks, so only the k kept cost a step
 * each.  ``kept`` holds k + 1 positions. */
__attribute__((target("avx2,popcnt")))
static int64_t select_by_bytes(const uint8_t *near, int64_t n, int64_t k, int64_t bound,
                               int64_t offset, int64_t *kept, int64_t *out_pos,
                               int32_t *out_dist) {
    int64_t j;
    /* The cut (the first distance whose count reaches k): guessed from a sample of about
     * 4,096 distances, then confirmed, or moved, one pass over the bytes at a time. */
    int64_t stride = n > 8192 ? n / 4096 : 1, sampled[MAX_BITS + 2] = {0}, drawn = 0;
    for (j = 0; j < n; j += stride) sampled[near[j]]++, drawn++;
    int64_t cut = 0;
    for (double seen = sampled[0], wanted = (double)k * drawn / n; seen < wanted && cut < bound;)
        seen += sampled[++cut];
    int64_t at = at_most_avx2(near, n, cut), below;
    if (at >= k) { /* step down while the distance below still reaches k */
        below = cut > 0 ? at_most_avx2(near, n, cut - 1) : 0;
        while (below >= k) {
            at = below, cut--;
            below = cut > 0 ? at_most_avx2(near, n, cut - 1) : 0;
        }
    } else { /* step up until it does, or everything within the bound is taken */
        below = at;
        while (at < k && cut <= bound) {
            below = at, cut++;
            at = cut <= bound ? at_most_avx2(near, n, cut) : at;
        }
    }
    int64_t at_cut = cut <= bound ? k - below : 0, taken = 0;
    const __m256i cut_v = _mm256_set1_epi8((char)cut);
    for (j = 0; j + 32 <= n; j += 32) {
        __m256i d = _mm256_loadu_si256((const __m256i *)(near + j));
        uint32_t less = ~(uint32_t)_mm256_movemask_epi8(
            _mm256_cmpeq_epi8(_mm256_max_epu8(d, cut_v), d)); /* d < cut */
        uint32_t at = at_cut ? (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(d, cut_v)) : 0;
        if (__builtin_popcount(at) > at_cut) { /* only the first at_cut ties, by position */
            uint32_t first = 0;
            for (int64_t left = at_cut; left; left--) first |= at & -at, at &= at - 1;
            at = first;
        }
        at_cut -= __builtin_popcount(at);
        for (uint32_t take = less | at; take; take &= take - 1)
            kept[taken++] = j + __builtin_ctz(take);
    }
    for (; j < n; j++) {
        int64_t d = near[j], at = (d == cut) & (at_cut > 0);
        if ((d < cut) | at) kept[taken++] = j;
        at_cut -= at;
    }
    place(near, kept, taken, cut <= bound ? cut : bound, offset, out_pos, out_dist);
    return taken;
}

/* select_avx2 for codes of at most 32 bits stored in 32-bit words, half the bytes: eight
 * codes a vector, their byte counts summed per word (pairs, then pairs of pairs), four
 * vectors packed into 32 distance bytes a step. */
__attribute__((target("avx2,popcnt")))
static int64_t select_narrow_avx2(uint32_t query, const uint32_t *codes, int64_t n, int64_t k,
                                  int64_t bound, uint8_t *near, int64_t *kept,
                                  int64_t *out_pos, int32_t *out_dist) {
    const __m256i q = _mm256_set1_epi32((int)query);
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); /* undo the packs' lanes */
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256i d[4];
        for (int v = 0; v < 4; v++) {
            __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(codes + j + 8 * v)), q);
            d[v] = _mm256_madd_epi16(_mm256_maddubs_epi16(byte_counts(x), ones8), ones16);
        }
        __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(d[0], d[1]),
                                            _mm256_packs_epi32(d[2], d[3]));
        _mm256_storeu_si256((__m256i *)(near + j), _mm256_permutevar8x32_epi32(bytes, order));
    }
    for (; j < n; j++) near[j] = (uint8_t)__builtin_popcount(codes[j] ^ query);
    return select_by_bytes(near, n, k, bound, 0, kept, out_pos, out_dist);
}
#endif

/* ---- AVX-512 kernel: 8 codes per vector --------------------------------------------- */

#ifdef HAVE_X86
__attribute__((target("avx512f,avx512vpopcntdq")))
static inline __m512i distances8(__m512i q0, __m512i q1, const uint64_t *codes, int64_t j,
                                 int words) {
    if (words == 1) return _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(codes + j), q0));
    /* two words per code: gather the low and the high words of 8 codes */
    const __m512i lo_idx = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i hi_idx = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
    __m512i a = _mm512_loadu_si512(codes + 2 * j), b = _mm512_loadu_si512(codes + 2 * j + 8);
    __m512i lo = _mm512_permutex2var_epi64(a, lo_idx, b), hi = _mm512_permutex2var_epi64(a, hi_idx, b);
    return _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(lo, q0)),
                            _mm512_popcnt_epi64(_mm512_xor_si512(hi, q1)));
}

__attribute__((target("avx512f,avx512vpopcntdq")))
static void scan_chunk_avx512(const uint64_t *queries, int g, const uint64_t *codes, int words,
                              int64_t c0, int64_t c1, int64_t offset, Selection *sel,
                              const Work *w) {
    if (c1 - c0 != CHUNK) { /* a block's ragged end */
        scan_chunk_portable(queries, g, codes, words, c0, c1, offset, sel, w);
        return;
    }
    __m512i q0[GROUP], q1[GROUP], bound[GROUP];
    __mmask8 any[GROUP];
    for (int i = 0; i < g; i++) {
        q0[i] = _mm512_set1_epi64((long long)queries[(int64_t)i * words]);
        q1[i] = _mm512_set1_epi64(words == 2 ? (long long)queries[(int64_t)i * words + 1] : 0);
        bound[i] = _mm512_set1_epi64(sel[i].bound);
        any[i] = 0;
    }
    for (int64_t j = c0; j < c1; j += 8) {
        if (words == 1) {
            __m512i c = _mm512_loadu_si512(codes + j);
            for (int i = 0; i < g; i++)
                any[i] |= _mm512_cmple_epi64_mask(_mm512_popcnt_epi64(_mm512_xor_si512(c, q0[i])), bound[i]);
        } else {
            for (int i = 0; i < g; i++)
                any[i] |= _mm512_cmple_epi64_mask(distances8(q0[i], q1[i], codes, j, 2), bound[i]);
        }
    }
    for (int i = 0; i < g; i++) {
        if (!any[i]) continue;
        for (int64_t j = c0; j < c1; j += 8) { /* only the codes within the bound */
            __m512i d = distances8(q0[i], q1[i], codes, j, words);
            __mmask8 m = _mm512_cmple_epi64_mask(d, _mm512_set1_epi64(sel[i].bound));
            while (m) {
                int b = __builtin_ctz(m);
                m &= m - 1;
                offer(&sel[i], w, offset + j + b, distance(queries + (int64_t)i * words, codes + (j + b) * words, words));
            }
        }
    }
}

/* Codes of at most 32 bits: their low halves packed 16 to a vector, twice the work per
 * instruction.  Only the test for candidates is narrow; offering them is shared. */
__attribute__((target("avx512f,avx512vpopcntdq")))
static void scan_chunk_avx512_narrow(const uint64_t *queries, int g, const uint64_t *codes,
                                     int words, int64_t c0, int64_t c1, int64_t offset,
                                     Selection *sel, const Work *w) {
    if (c1 - c0 != CHUNK) {
        scan_chunk_portable(queries, g, codes, words, c0, c1, offset, sel, w);
        return;
    }
    const __m512i low_halves =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    __m512i q[GROUP], bound[GROUP];
    __mmask16 any[GROUP];
    for (int i = 0; i < g; i++) {
        q[i] = _mm512_set1_epi32((int)(uint32_t)queries[i]);
        bound[i] = _mm512_set1_epi32((int)sel[i].bound);
        any[i] = 0;
    }
    for (int64_t j = c0; j < c1; j += 16) {
        __m512i c = _mm512_permutex2var_epi32(_mm512_loadu_si512(codes + j), low_halves,
                                              _mm512_loadu_si512(codes + j + 8));
        for (int i = 0; i < g; i++)
            any[i] |= _mm512_cmple_epi32_mask(_mm512_popcnt_epi32(_mm512_xor_si512(c, q[i])), bound[i]);
    }
    int wanted = 0;
    for (int i = 0; i < g; i++) wanted |= any[i] != 0;
    if (wanted) { /* rare: hand the chunk to the wide path, which offers the candidates */
        Selection *only[GROUP];
        for (int i = 0; i < g; i++) only[i] = any[i] ? &sel[i] : NULL;
        for (int i = 0; i < g; i++)
            if (only[i]) scan_chunk_avx512(queries + i, 1, codes, words, c0, c1, offset, only[i], w);
    }
}
#endif

typedef void (*ScanChunk)(const uint64_t *, int, const uint64_t *, int, int64_t, int64_t,
                          int64_t, Selection *, const Work *);
typedef int64_t (*Select)(const uint64_t *, const uint64_t *, int, int64_t, int64_t, int64_t,
                          int64_t, uint8_t *, int64_t *, int64_t *, int32_t *);
typedef struct {
    const char *name;
    ScanChunk wide, narrow; /* narrow: codes of <= 32 bits */
    Select select;          /* for a k that is a large share of the codes */
    int select_one;         /* select so for every lone query (faster with this kernel) */
    int supported;
} Kernel;

static Kernel kernels[] = {
#ifdef HAVE_X86
    {"avx512", scan_chunk_avx512, scan_chunk_avx512_narrow, select_avx2, 0, 0},
    {"avx2", scan_chunk_avx2, scan_chunk_avx2, select_avx2, 1, 0},
    {"popcnt", scan_chunk_popcnt, scan_chunk_popcnt, select_popcnt, 0, 0},
#endif
    {"portable", scan_chunk_portable, scan_chunk_portable, select_portable, 0, 1},
};
#define N_KERNELS ((int)(sizeof(kernels) / sizeof(kernels[0])))
static const Kernel *kernel = &kernels[N_KERNELS - 1];

/* This thread's buffer of at least n distances, kept between calls: a million codes' worth
 * freshly mapped each query would cost a page fault per 4 KB.  NULL if memory is short. */
static uint8_t *distance_buffer(int64_t n) {
    static _Thread_local uint8_t *buffer = NULL;
    static _Thread_local int64_t size = 0;
    if (n > size) {
        free(buffer);
        buffer = malloc((size_t)n);
        size = buffer ? n : 0;
    }
    return buffer;
}

/* top_k(queries, codes, words, n_bits, k, bound, offset, out_positions, out_distances, out_fills)
 *
 * Buffers are C-contiguous: queries (nq, words) uint64, codes (n, words) uint64,
 * out_positions (nq, k) int64, out_distances (nq, k) int32, out_fills (nq,) int64.
 * Positions are reported plus ``offset`` (where this range of codes starts).
 */
static PyObject *top_k(PyObject *self, PyObject *args) {
    Py_buffer qb, cb, pb, db, fb;
    int words;
    long long n_bits, k, bound0, offset;
    if (!PyArg_ParseTuple(args, "y*y*iLLLLw*w*w*", &qb, &cb, &words, &n_bits, &k, &bound0, &offset,
                          &pb, &db, &fb))
        return NULL;
    PyObject *result = NULL;
    int64_t nq = qb.len / (8 * words), n = cb.len / (8 * words);
    int64_t cap = 2 * k;
    if ((words != 1 && words != 2) || k < 1 || n_bits < 1 || n_bits > 64 * words ||
        pb.len < nq * k * 8 || db.len < nq * k * 4 || fb.len < nq * 8 ||
        (nq > 1 && nq % GROUP)) {
        PyErr_SetString(PyExc_ValueError, "top_k: inconsistent buffer sizes or arguments");
        goto done;
    }
    Selection *sel = calloc((size_t)nq, sizeof(Selection));
    int64_t *pos = malloc(sizeof(int64_t) * (size_t)(nq * cap));
    int32_t *dist = malloc(sizeof(int32_t) * (size_t)(nq * cap));
    int64_t *counts = calloc((size_t)(nq * (n_bits + 1)), sizeof(int64_t));
    Work w = {k, cap, n_bits, malloc(sizeof(int64_t) * (size_t)(n_bits + 2)),
              malloc(sizeof(int64_t) * (size_t)(k + 1)), malloc(sizeof(int32_t) * (size_t)k)};
    /* nearly every code would be buffered, or one query on a kernel that counts faster */
    int histogram_select = k * SELECT_SHARE >= n || (nq == 1 && kernel->select_one);
    uint8_t *near = histogram_select ? distance_buffer(n) : NULL;
    if (!sel || !pos || !dist || !counts || !w.histogram || !w.scratch_pos || !w.scratch_dist ||
        (histogram_select && !near)) {
        PyErr_NoMemory();
    } else {
        const uint64_t *queries = qb.buf, *codes = cb.buf;
        int64_t *out_pos = pb.buf, *out_fill = fb.buf;
        int32_t *out_dist = db.buf;
        Py_BEGIN_ALLOW_THREADS
        for (int64_t q = 0; q < nq; q++) {
            sel[q] = (Selection){pos + q * cap, dist + q * cap, counts + q * (n_bits + 1), 0,
                                 bound0 < n_bits ? bound0 : n_bits, 0};
        }
        int g = nq == 1 ? 1 : GROUP;
        ScanChunk scan = words == 1 && n_bits <= 32 ? kernel->narrow : kernel->wide;
        if (histogram_select) {
            for (int64_t q = 0; q < nq; q++) {
                int64_t kept = kernel->select(queries + q * words, codes, words, n, k, sel[q].bound,
                                              offset, near, w.scratch_pos,
                                              out_pos + q * k, out_dist + q * k);
                for (int64_t i = kept; i < k; i++) out_pos[q * k + i] = -1, out_dist[q * k + i] = -1;
                out_fill[q] = kept;
            }
        } else {
            for (int64_t a = 0; a < n; a += BLOCK) {
                int64_t b = a + BLOCK < n ? a + BLOCK : n;
                for (int64_t q = 0; q < nq; q += g)
                    for (int64_t c0 = a; c0 < b; c0 += CHUNK)
                        scan(queries + q * words, g, codes, words, c0,
                             c0 + CHUNK < b ? c0 + CHUNK : b, offset, sel + q, &w);
            }
            for (int64_t q = 0; q < nq; q++) {
                int64_t kept = compact(&sel[q], &w);
                for (int64_t i = 0; i < k; i++) {
                    out_pos[q * k + i] = i < kept ? sel[q].pos[i] : -1;
                    out_dist[q * k + i] = i < kept ? sel[q].dist[i] : -1;
                }
                out_fill[q] = kept;
            }
        }
        Py_END_ALLOW_THREADS
        result = Py_None;
        Py_INCREF(result);
    }
    free(sel), free(pos), free(dist), free(counts);
    free(w.histogram), free(w.scratch_pos), free(w.scratch_dist);
done:
    PyBuffer_Release(&qb), PyBuffer_Release(&cb), PyBuffer_Release(&pb);
    PyBuffer_Release(&db), PyBuffer_Release(&fb);
    return result;
}

/* top_one_narrow(query, codes, k, bound, out_positions, out_distances) -> kept
 *
 * One query over codes of at most 32 bits held as uint32 (a copy the scan keeps), by
 * the AVX2 selection; the rows past ``kept`` are -1.  ValueError where the CPU has no
 * AVX2 or the buffers do not fit. */
static PyObject *top_one_narrow(PyObject *self, PyObject *args) {
    unsigned long long query;
    long long k, bound;
    Py_buffer cb, pb, db;
    if (!PyArg_ParseTuple(args, "Ky*LLw*w*", &query, &cb, &k, &bound, &pb, &db)) return NULL;
    PyObject *result = NULL;
    int64_t n = cb.len / 4;
#ifdef HAVE_X86
    int avx2 = kernels[1].supported;
#else
    int avx2 = 0;
#endif
    if (!avx2 || k < 1 || bound < 0 || bound > 32 || query >> 32 || pb.len < k * 8 || db.len < k * 4) {
        PyErr_SetString(PyExc_ValueError, "top_one_narrow: no AVX2, or inconsistent arguments");
        goto done;
    }
    uint8_t *near = distance_buffer(n);
    int64_t *kept = malloc(sizeof(int64_t) * (size_t)(k + 1));
    if (!near || !kept) {
        free(kept);
        PyErr_NoMemory();
        goto done;
    }
    int64_t found = 0, *out_pos = pb.buf;
    int32_t *out_dist = db.buf;
    Py_BEGIN_ALLOW_THREADS
#ifdef HAVE_X86
    found = select_narrow_avx2((uint32_t)query, cb.buf, n, k, bound, near, kept, out_pos, out_dist);
#endif
    for (int64_t i = found; i < k; i++) out_pos[i] = -1, out_dist[i] = -1;
    Py_END_ALLOW_THREADS
    free(kept);
    result = PyLong_FromLongLong(found);
done:
    PyBuffer_Release(&cb), PyBuffer_Release(&pb), PyBuffer_Release(&db);
    return result;
}

/* use(name): run the named kernel from now on; ValueError if this CPU lacks it. */
static PyObject *use(PyObject *self, PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    for (int i = 0; i < N_KERNELS; i++) {
        if (strcmp(kernels[i].name, name) == 0 && kernels[i].supported) {
            kernel = &kernels[i];
            Py_RETURN_NONE;
        }
    }
    PyErr_Format(PyExc_ValueError, "kernel %s is not available on this CPU", name);
    return NULL;
}

/* available(): the kernels this CPU runs, fastest first. */
static PyObject *available(PyObject *self, PyObject *args) {
    PyObject *names = PyList_New(0);
    for (int i = 0; names && i < N_KERNELS; i++) {
        if (!kernels[i].supported) continue;
        PyObject *name = PyUnicode_FromString(kernels[i].name);
        if (!name || PyList_Append(names, name) < 0) Py_CLEAR(names);
        Py_XDECREF(name);
    }
    return names;
}

/* current(): the kernel in use. */
static PyObject *current(PyObject *self, PyObject *args) {
    return PyUnicode_FromString(kernel->name);
}

static PyMethodDef methods[] = {
    {"top_k", top_k, METH_VARARGS, "Exact Hamming top-k of a range of queries over a range of codes."},
    {"top_one_narrow", top_one_narrow, METH_VARARGS, "One query's top k over 32-bit codes."},
    {"use", use, METH_VARARGS, "Run the named kernel from now on."},
    {"available", available, METH_NOARGS, "The kernels this CPU runs, fastest first."},
    {"current", current, METH_NOARGS, "The kernel in use."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_popcount", NULL, -1, methods};

PyMODINIT_FUNC PyInit__popcount(void) {
#ifdef HAVE_X86
    __builtin_cpu_init();
    kernels[0].supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq") &&
                           __builtin_cpu_supports("avx2"); /* its selection runs on AVX2 */
    kernels[1].supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    kernels[2].supported = __builtin_cpu_supports("popcnt");
#endif
    for (int i = 0; i < N_KERNELS; i++) {
        if (kernels[i].supported) {
            kernel = &kernels[i];
            break;
        }
    }
    return PyModule_Create(&module);
}
