/* SANN's stage tail, a pass or two per sample: conv bias -> spatial attention -> batch norm (training) -> ReLU.

Rows are (batch, time, width) and hold `channels` values, the layout of the matrix products around them. Values
are stored in bf16 and computed in fp32, 16 channels to an AVX-512 vector; `channels` must be a multiple of 16.
Loops run over a vector of channels, then the sample's rows, so that per-channel constants and sums stay in
registers. Per-thread sums are added in thread order: results do not depend on scheduling. See fused_sann.py.
*/
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t batch, length, width, channels, in_length; /* length: time after this stage's convolution */
    const uint16_t *y;  /* bf16 [rows, channels]: the convolution without its bias; NULL for the first stage */
    const float *x;     /* first stage: the windows [batch, in_length, width] */
    const float *taps;  /* first stage: the convolution's weight as [3, channels] */
    const float *bias;  /* [channels] */
    const float *att;   /* the attention's 3 weights and its bias */
    const float *scale; /* [channels]: gamma * invstd */
    const float *shift; /* [channels]: beta - mean * gamma * invstd */
    const float *mean;  /* [channels]: the batch mean of z * s */
    float *a;           /* [rows]: z's mean over channels */
    float *s;           /* [rows]: the attention, sigmoid(conv(a)) */
} Stage;

/* What a row reads: its bf16 convolution output, or for the first stage its three input taps. */
typedef struct {
    const uint16_t *y;
    float x0, x1, x2;
} Row;

/* Where the gradient reaching a row's output comes from: the next stage's column gradients at one or two places
   (folded back), or the pooled gradient (times 1 / length). */
typedef struct {
    const uint16_t *here, *after; /* `after` NULL where only one tap read this time */
    const float *pooled;
} Gradient;

static inline __m512 load_bf16(const uint16_t *p) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

/* Rounds to nearest even and keeps NaN. */
static inline void store_bf16(uint16_t *p, __m512 v) {
    _mm256_storeu_si256((__m256i *)p, (__m256i)_mm512_cvtneps_pbh(v));
}

/* torch.relu: 0 below zero, NaN kept. */
static inline __m512 relu(__m512 v) {
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), _mm512_setzero_ps());
}

static inline float at_time(const float *v, int64_t t, int64_t length, int64_t width) {
    return (t >= 0 && t < length) ? v[t * width] : 0.0f;
}

/* The first stage's input at (b, t, w), zero outside the window (the convolution's padding). */
static inline float input_at(const Stage *st, int64_t b, int64_t t, int64_t w) {
    return (t >= 0 && t < st->in_length) ? st->x[(b * st->in_length + t) * st->width + w] : 0.0f;
}

static inline Row row_at(const Stage *st, int64_t b, int64_t t, int64_t w) {
    if (st->y) return (Row){st->y + ((b * st->length + t) * st->width + w) * st->channels, 0.0f, 0.0f, 0.0f};
    return (Row){NULL, input_at(st, b, 2 * t - 1, w), input_at(st, b, 2 * t, w), input_at(st, b, 2 * t + 1, w)};
}

static void sample_rows(const Stage *st, int64_t b, Row *row) {
    for (int64_t t = 0; t < st->length; t++)
        for (int64_t w = 0; w < st->width; w++) row[t * st->width + w] = row_at(st, b, t, w);
}

static void sample_gradients(const Stage *st, const uint16_t *dcolumns, const float *dpooled, int64_t b,
                             Gradient *grad) {
    const int64_t T = st->length, W = st->width, C = st->channels, next = (T - 1) / 2 + 1;
    for (int64_t t = 0; t < T; t++)
        for (int64_t w = 0; w < W; w++) {
            const int64_t tn = t / 2;
            Gradient *g = &grad[t * W + w];
            g->here = g->after = NULL;
            g->pooled = dcolumns ? NULL : dpooled + (b * W + w) * C;
            if (dcolumns) {
                g->here = dcolumns + ((b * next + tn) * W + w) * 3 * C + (t % 2 ? 2 * C : C);
                if (t % 2 && tn + 1 < next) g->after = dcolumns + ((b * next + tn + 1) * W + w) * 3 * C;
            }
        }
}

/* z = convolution + bias, channels c .. c + 16 of a row. */
static inline __m512 conv_vector(const Stage *st, const Row *row, int64_t c) {
    const __m512 bias = _mm512_loadu_ps(st->bias + c);
    if (row->y) return _mm512_add_ps(load_bf16(row->y + c), bias);
    const float *taps = st->taps + c;
    __m512 z = _mm512_fmadd_ps(_mm512_loadu_ps(taps), _mm512_set1_ps(row->x0), bias);
    z = _mm512_fmadd_ps(_mm512_loadu_ps(taps + st->channels), _mm512_set1_ps(row->x1), z);
    return _mm512_fmadd_ps(_mm512_loadu_ps(taps + 2 * st->channels), _mm512_set1_ps(row->x2), z);
}

/* The gradient reaching o, channels c .. c + 16 of a row. */
static inline __m512 gradient_vector(const Gradient *g, int64_t c, __m512 inv_length) {
    if (g->pooled) return _mm512_mul_ps(_mm512_loadu_ps(g->pooled + c), inv_length);
    const __m512 here = load_bf16(g->here + c);
    return g->after ? _mm512_add_ps(here, load_bf16(g->after + c)) : here;
}

/* relu's backward: g where o = relu(u * scale + shift) passed (or is NaN), else 0. */
static inline __m512 masked_gradient(__m512 u, __m512 scale, __m512 shift, __m512 g) {
    const __m512 o = _mm512_fmadd_ps(u, scale, shift);
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(o, _mm512_setzero_ps(), _CMP_NLE_UQ), g);
}

/* ---- forward ------------------------------------------------------------------------------------------------ */

/* One sample: a and s, and the sample's mean and squared deviations of u = z * s per channel. */
static void sample_moments(const Stage *st, int64_t b, const float *sums, Row *row, float *mean, float *m2) {
    const int64_t T = st->length, W = st->width, C = st->channels, rows = T * W, first = b * rows;
    float *restrict a = st->a + first, *restrict attention = st->s + first;
    const float *att = st->att;
    sample_rows(st, b, row);
    /* z's mean over channels: the mean of y (or of the taps times the inputs) plus the bias's mean */
    for (int64_t r = 0; r < rows; r++) {
        float sum = sums[0];
        if (row[r].y) {
            __m512 acc = _mm512_setzero_ps();
            for (int64_t c = 0; c < C; c += 16) acc = _mm512_add_ps(acc, load_bf16(row[r].y + c));
            sum += _mm512_reduce_add_ps(acc);
        } else {
            sum += sums[1] * row[r].x0 + sums[2] * row[r].x1 + sums[3] * row[r].x2;
        }
        a[r] = sum / (float)C;
    }
    for (int64_t t = 0; t < T; t++)
        for (int64_t w = 0; w < W; w++) {
            const float p = att[3] + att[0] * at_time(a + w, t - 1, T, W) + att[1] * a[t * W + w] +
                            att[2] * at_time(a + w, t + 1, T, W);
            attention[t * W + w] = 1.0f / (1.0f + expf(-p));
        }
    const __m512 inv_rows = _mm512_set1_ps(1.0f / (float)rows);
    for (int64_t c = 0; c < C; c += 16) {
        __m512 sum = _mm512_setzero_ps(), squares = _mm512_setzero_ps();
        for (int64_t r = 0; r < rows; r++)
            sum = _mm512_fmadd_ps(conv_vector(st, &row[r], c), _mm512_set1_ps(attention[r]), sum);
        const __m512 m = _mm512_mul_ps(sum, inv_rows);
        for (int64_t r = 0; r < rows; r++) {
            const __m512 d = _mm512_fmsub_ps(conv_vector(st, &row[r], c), _mm512_set1_ps(attention[r]), m);
            squares = _mm512_fmadd_ps(d, d, squares);
        }
        _mm512_storeu_ps(mean + c, m);
        _mm512_storeu_ps(m2 + c, squares);
    }
}

/* Chan's merge of (count, mean, m2) moments: `into` takes in `part`. */
static void merge_moments(int64_t C, double count, double part_count, float *into_mean, float *into_m2,
                          const float *part_mean, const float *part_m2) {
    const double total = count + part_count;
    for (int64_t c = 0; c < C; c++) {
        const double delta = (double)part_mean[c] - into_mean[c];
        into_mean[c] = (float)(into_mean[c] + delta * part_count / total);
        into_m2[c] = (float)(into_m2[c] + part_m2[c] + delta * delta * count * part_count / total);
    }
}

/* First pass: a, s, and the batch's mean and biased variance of z * s per channel. */
/* The exported passes return 0, or 1 where their working memory could not be allocated (nothing is written then
   that the caller keeps). */

int stage_statistics(Stage st, float *mean, float *var, int threads) {
    const int64_t C = st.channels, rows = st.length * st.width;
    float sums[4] = {0.0f, 0.0f, 0.0f, 0.0f}; /* over channels: the bias, and the first stage's three taps */
    for (int64_t c = 0; c < C; c++) {
        sums[0] += st.bias[c];
        if (!st.y) sums[1] += st.taps[c], sums[2] += st.taps[C + c], sums[3] += st.taps[2 * C + c];
    }
    float *parts = calloc((size_t)threads * 2 * C, sizeof(float));
    int64_t *counts = calloc((size_t)threads, sizeof(int64_t));
    int failed = 0;
    if (!parts || !counts) {
        free(parts);
        free(counts);
        return 1;
    }
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        const int id = omp_get_thread_num();
        float *sample = malloc((size_t)2 * C * sizeof(float));
        Row *row = malloc((size_t)rows * sizeof(Row));
        float *tmean = parts + (size_t)id * 2 * C, *tm2 = tmean + C;
        failed = !sample || !row;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < st.batch; b++) {
            if (failed) continue;
            sample_moments(&st, b, sums, row, sample, sample + C);
            merge_moments(C, (double)counts[id], (double)rows, tmean, tm2, sample, sample + C);
            counts[id] += rows;
        }
        free(sample);
        free(row);
    }
    if (failed) {
        free(parts);
        free(counts);
        return 1;
    }
    for (int64_t c = 0; c < C; c++) mean[c] = 0.0f, var[c] = 0.0f;
    int64_t count = 0;
    for (int i = 0; i < threads; i++) {
        if (!counts[i]) continue;
        merge_moments(C, (double)count, (double)counts[i], mean, var, parts + (size_t)i * 2 * C,
                      parts + (size_t)i * 2 * C + C);
        count += counts[i];
    }
    for (int64_t c = 0; c < C; c++) var[c] /= (float)count;
    free(parts);
    free(counts);
    return 0;
}

/* One sample: o = relu(z * s * scale + shift) written as the next stage's columns
   [batch, next_length, width, 3 * channels] (its taps read times 2t-1, 2t and 2t+1, zero outside), or averaged
   over time into pooled [batch, width, channels]. */
static void sample_output(const Stage *st, int64_t b, uint16_t *columns, float *pooled) {
    const int64_t T = st->length, W = st->width, C = st->channels, next = (T - 1) / 2 + 1;
    const float *restrict attention = st->s + b * T * W;
    const __m512 inv_length = _mm512_set1_ps(1.0f / (float)T);
    if (columns) {
        for (int64_t w = 0; w < W; w++) {
            memset(columns + ((b * next) * W + w) * 3 * C, 0, (size_t)C * 2);
            if (2 * (next - 1) + 1 >= T) memset(columns + ((b * next + next - 1) * W + w) * 3 * C + 2 * C, 0, (size_t)C * 2);
        }
    } else {
        memset(pooled + b * W * C, 0, (size_t)(W * C) * sizeof(float));
    }
    for (int64_t t = 0; t < T; t++)
        for (int64_t w = 0; w < W; w++) {
            const Row row = row_at(st, b, t, w);
            const __m512 s = _mm512_set1_ps(attention[t * W + w]);
            const int64_t tn = t / 2;
            uint16_t *here = columns ? columns + ((b * next + tn) * W + w) * 3 * C + (t % 2 ? 2 * C : C) : NULL;
            uint16_t *after = columns && t % 2 && tn + 1 < next ? columns + ((b * next + tn + 1) * W + w) * 3 * C : NULL;
            float *p = pooled ? pooled + (b * W + w) * C : NULL;
            for (int64_t c = 0; c < C; c += 16) {
                const __m512 u = _mm512_mul_ps(conv_vector(st, &row, c), s);
                const __m512 o = relu(_mm512_fmadd_ps(u, _mm512_loadu_ps(st->scale + c), _mm512_loadu_ps(st->shift + c)));
                if (here) {
                    store_bf16(here + c, o);
                    if (after) store_bf16(after + c, o);
                } else {
                    _mm512_storeu_ps(p + c, _mm512_fmadd_ps(o, inv_length, _mm512_loadu_ps(p + c)));
                }
            }
        }
}

/* Second pass: see sample_output. */
void stage_output(Stage st, uint16_t *columns, float *pooled, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < st.batch; b++) sample_output(&st, b, columns, pooled);
}

/* ---- backward ----------------------------------------------------------------------------------------------- */

/* One sample: adds the ReLU-masked gradient g and g * (u - mean) to sums per channel. */
static void sample_gradient_sums(const Stage *st, const uint16_t *dcolumns, const float *dpooled, int64_t b, Row *row,
                                 Gradient *grad, float *sum_g, float *sum_gd) {
    const int64_t rows = st->length * st->width, C = st->channels;
    const float *restrict attention = st->s + b * rows;
    const __m512 inv_length = _mm512_set1_ps(1.0f / (float)st->length);
    sample_rows(st, b, row);
    sample_gradients(st, dcolumns, dpooled, b, grad);
    for (int64_t c = 0; c < C; c += 16) {
        const __m512 scale = _mm512_loadu_ps(st->scale + c), shift = _mm512_loadu_ps(st->shift + c);
        const __m512 mean = _mm512_loadu_ps(st->mean + c);
        __m512 g_sum = _mm512_setzero_ps(), gd_sum = _mm512_setzero_ps();
        for (int64_t r = 0; r < rows; r++) {
            const __m512 u = _mm512_mul_ps(conv_vector(st, &row[r], c), _mm512_set1_ps(attention[r]));
            const __m512 g = masked_gradient(u, scale, shift, gradient_vector(&grad[r], c, inv_length));
            g_sum = _mm512_add_ps(g_sum, g);
            gd_sum = _mm512_fmadd_ps(g, _mm512_sub_ps(u, mean), gd_sum);
        }
        _mm512_storeu_ps(sum_g + c, _mm512_add_ps(_mm512_loadu_ps(sum_g + c), g_sum));
        _mm512_storeu_ps(sum_gd + c, _mm512_add_ps(_mm512_loadu_ps(sum_gd + c), gd_sum));
    }
}

/* First pass: per channel, the sums of the ReLU-masked gradient g and of g * (z * s - mean). */
int stage_gradient_sums(Stage st, const uint16_t *dcolumns, const float *dpooled, float *sum_g, float *sum_gd,
                        int threads) {
    const int64_t C = st.channels, rows = st.length * st.width;
    float *parts = calloc((size_t)threads * 2 * C, sizeof(float));
    int failed = 0;
    if (!parts) return 1;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *part = parts + (size_t)omp_get_thread_num() * 2 * C;
        Row *row = malloc((size_t)rows * sizeof(Row));
        Gradient *grad = malloc((size_t)rows * sizeof(Gradient));
        failed = !row || !grad;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < st.batch; b++)
            if (!failed) sample_gradient_sums(&st, dcolumns, dpooled, b, row, grad, part, part + C);
        free(row);
        free(grad);
    }
    if (failed) {
        free(parts);
        return 1;
    }
    for (int64_t c = 0; c < C; c++) sum_g[c] = 0.0f, sum_gd[c] = 0.0f;
    for (int i = 0; i < threads; i++)
        for (int64_t c = 0; c < C; c++) sum_g[c] += parts[(size_t)i * 2 * C + c], sum_gd[c] += parts[(size_t)i * 2 * C + C + c];
    free(parts);
    return 0;
}

/* One sample. `scratch` has room for the rows' Row and Gradient and rows * (channels + 18) floats; `part` is the
   thread's sums: dbias [C], dtaps [3, C], datt [4]. */
static void sample_input_gradient(const Stage *st, const uint16_t *dcolumns, const float *dpooled, const float *k1_,
                                  const float *k0_, int64_t b, void *scratch, uint16_t *dy, float *part) {
    const int64_t T = st->length, W = st->width, C = st->channels, rows = T * W, first = b * rows;
    const float *restrict attention = st->s + first, *restrict a = st->a + first;
    Row *row = (Row *)scratch;
    Gradient *grad = (Gradient *)(row + rows);
    float *restrict du_rows = (float *)(grad + rows), *restrict lanes = du_rows + rows * C; /* ds's partial sums */
    float *restrict dp = lanes + rows * 16, *restrict da = dp + rows;
    const __m512 inv_length = _mm512_set1_ps(1.0f / (float)T), zero = _mm512_setzero_ps();
    sample_rows(st, b, row);
    sample_gradients(st, dcolumns, dpooled, b, grad);
    /* batch norm's input gradient du, and the attention's ds = sum over channels of du * z */
    for (int64_t c = 0; c < C; c += 16) {
        const __m512 scale = _mm512_loadu_ps(st->scale + c), shift = _mm512_loadu_ps(st->shift + c);
        const __m512 mean = _mm512_loadu_ps(st->mean + c), k1 = _mm512_loadu_ps(k1_ + c), k0 = _mm512_loadu_ps(k0_ + c);
        for (int64_t r = 0; r < rows; r++) {
            const __m512 z = conv_vector(st, &row[r], c), u = _mm512_mul_ps(z, _mm512_set1_ps(attention[r]));
            const __m512 g = masked_gradient(u, scale, shift, gradient_vector(&grad[r], c, inv_length));
            const __m512 du = _mm512_fnmadd_ps(k1, _mm512_sub_ps(u, mean), _mm512_fmadd_ps(scale, g, k0));
            _mm512_storeu_ps(du_rows + r * C + c, du);
            float *lane = lanes + r * 16;
            _mm512_storeu_ps(lane, c ? _mm512_fmadd_ps(du, z, _mm512_loadu_ps(lane)) : _mm512_mul_ps(du, z));
        }
    }
    for (int64_t r = 0; r < rows; r++)
        dp[r] = _mm512_reduce_add_ps(_mm512_loadu_ps(lanes + r * 16)) * attention[r] * (1.0f - attention[r]);
    const float *att = st->att;
    float *restrict datt = part + 4 * C;
    for (int64_t t = 0; t < T; t++)
        for (int64_t w = 0; w < W; w++) {
            const int64_t r = t * W + w;
            da[r] = (att[0] * at_time(dp + w, t + 1, T, W) + att[1] * dp[r] + att[2] * at_time(dp + w, t - 1, T, W)) / (float)C;
            datt[0] += dp[r] * at_time(a + w, t - 1, T, W);
            datt[1] += dp[r] * a[r];
            datt[2] += dp[r] * at_time(a + w, t + 1, T, W);
            datt[3] += dp[r];
        }
    /* dz = du * s + da / C: the bias's gradient, and dy or the first stage's weight gradient */
    for (int64_t c = 0; c < C; c += 16) {
        __m512 dbias = zero, d0 = zero, d1 = zero, d2 = zero;
        for (int64_t r = 0; r < rows; r++) {
            const __m512 du = _mm512_loadu_ps(du_rows + r * C + c);
            const __m512 dz = _mm512_fmadd_ps(du, _mm512_set1_ps(attention[r]), _mm512_set1_ps(da[r]));
            dbias = _mm512_add_ps(dbias, dz);
            if (dy) {
                store_bf16(dy + (first + r) * C + c, dz);
            } else {
                d0 = _mm512_fmadd_ps(dz, _mm512_set1_ps(row[r].x0), d0);
                d1 = _mm512_fmadd_ps(dz, _mm512_set1_ps(row[r].x1), d1);
                d2 = _mm512_fmadd_ps(dz, _mm512_set1_ps(row[r].x2), d2);
            }
        }
        _mm512_storeu_ps(part + c, _mm512_add_ps(_mm512_loadu_ps(part + c), dbias));
        _mm512_storeu_ps(part + C + c, _mm512_add_ps(_mm512_loadu_ps(part + C + c), d0));
        _mm512_storeu_ps(part + 2 * C + c, _mm512_add_ps(_mm512_loadu_ps(part + 2 * C + c), d1));
        _mm512_storeu_ps(part + 3 * C + c, _mm512_add_ps(_mm512_loadu_ps(part + 3 * C + c), d2));
    }
}

/* Second pass. du = scale * g - k1 * (u - mean) + k0 is batch norm's input gradient (k1, k0 per channel, from the
   first pass's sums); then the attention's and the bias's. Writes dy (bf16 [rows, channels]) or, for the first
   stage, the convolution's weight gradient dtaps [3, channels]; dbias [channels]; datt [4]. */
int stage_input_gradient(Stage st, const uint16_t *dcolumns, const float *dpooled, const float *k1, const float *k0,
                         uint16_t *dy, float *dtaps, float *dbias, float *datt, int threads) {
    const int64_t C = st.channels, rows = st.length * st.width, per_thread = 4 * C + 4;
    float *parts = calloc((size_t)threads * per_thread, sizeof(float));
    int failed = 0;
    if (!parts) return 1;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        void *scratch = malloc((size_t)rows * ((C + 18) * sizeof(float) + sizeof(Row) + sizeof(Gradient)));
        float *part = parts + (size_t)omp_get_thread_num() * per_thread;
        failed = !scratch;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < st.batch; b++)
            if (!failed) sample_input_gradient(&st, dcolumns, dpooled, k1, k0, b, scratch, dy, part);
        free(scratch);
    }
    if (failed) {
        free(parts);
        return 1;
    }
    for (int64_t c = 0; c < C; c++) dbias[c] = 0.0f;
    if (dtaps)
        for (int64_t c = 0; c < 3 * C; c++) dtaps[c] = 0.0f;
    for (int k = 0; k < 4; k++) datt[k] = 0.0f;
    for (int i = 0; i < threads; i++) {
        const float *part = parts + (size_t)i * per_thread;
        for (int64_t c = 0; c < C; c++) dbias[c] += part[c];
        if (dtaps)
            for (int64_t c = 0; c < 3 * C; c++) dtaps[c] += part[C + c];
        for (int k = 0; k < 4; k++) datt[k] += part[4 * C + k];
    }
    free(parts);
    return 0;
}
