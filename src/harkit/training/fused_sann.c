/* SANN's stage tail in one pass per sample: conv bias -> spatial attention -> batch norm (training) -> ReLU.

Rows are (batch, time, width) and hold `channels` values, the layout of the matrix products around them. Values
are stored in bf16 and computed in fp32. Channels go in blocks of BLOCK, so that a block's per-channel
constants and sums stay in registers while the rows stream past; `channels` must be a multiple of BLOCK.
Per-thread sums are added in thread order, so results do not depend on scheduling. See fused_sann.py.
*/
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 32

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

static inline float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t float_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u); /* NaN stays NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);                                              /* nearest even */
    return (uint16_t)(bits >> 16);
}

/* torch.relu's NaN-keeping max (fmaxf would return 0 for NaN, and does not vectorize) */
static inline float relu(float v) { return v < 0.0f ? 0.0f : v; }

static inline float at_time(const float *v, int64_t t, int64_t length, int64_t width) {
    return (t >= 0 && t < length) ? v[t * width] : 0.0f;
}

/* The first stage's input at (b, t, w), zero outside the window (the convolution's padding). */
static inline float input_at(const Stage *st, int64_t b, int64_t t, int64_t w) {
    return (t >= 0 && t < st->in_length) ? st->x[(b * st->in_length + t) * st->width + w] : 0.0f;
}

/* What a row needs: its bf16 convolution output, or for the first stage its three input taps. */
typedef struct {
    const uint16_t *y;
    float x0, x1, x2;
} Row;

static inline Row row_at(const Stage *st, int64_t b, int64_t t, int64_t w) {
    Row row = {NULL, 0.0f, 0.0f, 0.0f};
    if (st->y)
        row.y = st->y + ((b * st->length + t) * st->width + w) * st->channels;
    else
        row.x0 = input_at(st, b, 2 * t - 1, w), row.x1 = input_at(st, b, 2 * t, w), row.x2 = input_at(st, b, 2 * t + 1, w);
    return row;
}

/* z = convolution + bias for channels c0 .. c0 + BLOCK of a row. */
static inline void conv_block(const Stage *st, const Row *row, int64_t c0, float *restrict z) {
    const float *restrict bias = st->bias + c0;
    if (row->y) {
        const uint16_t *restrict y = row->y + c0;
        for (int j = 0; j < BLOCK; j++) z[j] = bf16_to_float(y[j]) + bias[j];
    } else {
        const float *restrict k0 = st->taps + c0, *restrict k1 = k0 + st->channels, *restrict k2 = k1 + st->channels;
        for (int j = 0; j < BLOCK; j++) z[j] = bias[j] + k0[j] * row->x0 + k1[j] * row->x1 + k2[j] * row->x2;
    }
}

/* Forward, one sample: a and s, and the sample's mean and squared deviations of u = z * s per channel. */
static void sample_moments(const Stage *st, int64_t b, const float *sums, float *restrict mean, float *restrict m2) {
    const int64_t T = st->length, W = st->width, C = st->channels, rows = T * W, first = b * rows;
    float *restrict a = st->a + first, *restrict attention = st->s + first;
    const float *att = st->att;
    /* z's mean over channels is the mean of y (or of the taps times the inputs) plus the bias's mean */
    for (int64_t t = 0; t < T; t++)
        for (int64_t w = 0; w < W; w++) {
            const Row row = row_at(st, b, t, w);
            float sum = sums[0];
            if (row.y) {
                const uint16_t *restrict y = row.y;
#pragma omp simd reduction(+ : sum)
                for (int64_t c = 0; c < C; c++) sum += bf16_to_float(y[c]);
            } else {
                sum += sums[1] * row.x0 + sums[2] * row.x1 + sums[3] * row.x2;
            }
            a[t * W + w] = sum / (float)C;
        }
    for (int64_t t = 0; t < T; t++)
        for (int64_t w = 0; w < W; w++) {
            const float p = att[3] + att[0] * at_time(a + w, t - 1, T, W) + att[1] * a[t * W + w] +
                            att[2] * at_time(a + w, t + 1, T, W);
            attention[t * W + w] = 1.0f / (1.0f + expf(-p));
        }
    for (int64_t c0 = 0; c0 < C; c0 += BLOCK) {
        float z[BLOCK], sum[BLOCK] = {0}, sq[BLOCK] = {0};
        for (int64_t t = 0; t < T; t++)
            for (int64_t w = 0; w < W; w++) {
                const Row row = row_at(st, b, t, w);
                const float s = attention[t * W + w];
                conv_block(st, &row, c0, z);
                for (int j = 0; j < BLOCK; j++) sum[j] += z[j] * s;
            }
        for (int j = 0; j < BLOCK; j++) sum[j] /= (float)rows;
        for (int64_t t = 0; t < T; t++)
            for (int64_t w = 0; w < W; w++) {
                const Row row = row_at(st, b, t, w);
                const float s = attention[t * W + w];
                conv_block(st, &row, c0, z);
                for (int j = 0; j < BLOCK; j++) {
                    const float d = z[j] * s - sum[j];
                    sq[j] += d * d;
                }
            }
        for (int j = 0; j < BLOCK; j++) mean[c0 + j] = sum[j], m2[c0 + j] = sq[j];
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

/* Forward, first pass: a, s, and the batch's mean and biased variance of z * s per channel. */
void stage_statistics(Stage st, float *mean, float *var, int threads) {
    const int64_t C = st.channels, rows = st.length * st.width;
    float sums[4] = {0.0f, 0.0f, 0.0f, 0.0f}; /* over channels: the bias, and the first stage's three taps */
    for (int64_t c = 0; c < C; c++) {
        sums[0] += st.bias[c];
        if (!st.y) sums[1] += st.taps[c], sums[2] += st.taps[C + c], sums[3] += st.taps[2 * C + c];
    }
    float *parts = calloc((size_t)threads * 2 * C, sizeof(float));
    int64_t *counts = calloc((size_t)threads, sizeof(int64_t));
#pragma omp parallel num_threads(threads)
    {
        const int id = omp_get_thread_num();
        float *sample = malloc((size_t)2 * C * sizeof(float));
        float *tmean = parts + (size_t)id * 2 * C, *tm2 = tmean + C;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < st.batch; b++) {
            sample_moments(&st, b, sums, sample, sample + C);
            merge_moments(C, (double)counts[id], (double)rows, tmean, tm2, sample, sample + C);
            counts[id] += rows;
        }
        free(sample);
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
}

/* Forward, second pass, one sample: o = relu(z * s * scale + shift) written as the next stage's columns
   [batch, next_length, width, 3 * channels] (its taps read times 2t-1, 2t and 2t+1, zero outside), or averaged
   over time into pooled [batch, width, channels]. */
static void sample_output(const Stage *st, int64_t b, uint16_t *columns, float *pooled) {
    const int64_t T = st->length, W = st->width, C = st->channels, next = (T - 1) / 2 + 1;
    const float *restrict attention = st->s + b * T * W;
    const float inv = 1.0f / (float)T;
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
            const float s = attention[t * W + w];
            const int64_t tn = t / 2;
            uint16_t *here = columns ? columns + ((b * next + tn) * W + w) * 3 * C + (t % 2 ? 2 * C : C) : NULL;
            uint16_t *after = columns && t % 2 && tn + 1 < next ? columns + ((b * next + tn + 1) * W + w) * 3 * C : NULL;
            for (int64_t c0 = 0; c0 < C; c0 += BLOCK) {
                float z[BLOCK];
                const float *restrict scale = st->scale + c0, *restrict shift = st->shift + c0;
                conv_block(st, &row, c0, z);
                if (here) {
                    uint16_t *restrict out = here + c0;
                    for (int j = 0; j < BLOCK; j++) out[j] = float_to_bf16(relu(z[j] * s * scale[j] + shift[j]));
                } else {
                    float *restrict p = pooled + (b * W + w) * C + c0;
                    for (int j = 0; j < BLOCK; j++) p[j] += relu(z[j] * s * scale[j] + shift[j]) * inv;
                }
            }
            if (after) memcpy(after, here, (size_t)C * 2);
        }
}

void stage_output(Stage st, uint16_t *columns, float *pooled, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < st.batch; b++) sample_output(&st, b, columns, pooled);
}

/* Where the gradient reaching o at (b, t, w) comes from: the next stage's column gradients at one or two places
   (folded back), or the pooled gradient. */
typedef struct {
    const uint16_t *here, *after; /* bf16, `after` NULL where only one tap read this time */
    const float *pooled;          /* or this, times 1 / length */
} Gradient;

static inline Gradient gradient_at(const Stage *st, const uint16_t *dcolumns, const float *dpooled, int64_t b,
                                   int64_t t, int64_t w) {
    const int64_t T = st->length, W = st->width, C = st->channels, next = (T - 1) / 2 + 1, tn = t / 2;
    Gradient g = {NULL, NULL, NULL};
    if (dcolumns) {
        g.here = dcolumns + ((b * next + tn) * W + w) * 3 * C + (t % 2 ? 2 * C : C);
        if (t % 2 && tn + 1 < next) g.after = dcolumns + ((b * next + tn + 1) * W + w) * 3 * C;
    } else {
        g.pooled = dpooled + (b * W + w) * C;
    }
    return g;
}

static inline void gradient_block(const Gradient *g, int64_t c0, float inv_length, float *restrict out) {
    if (g->pooled) {
        const float *restrict p = g->pooled + c0;
        for (int j = 0; j < BLOCK; j++) out[j] = p[j] * inv_length;
    } else if (g->after) {
        const uint16_t *restrict here = g->here + c0, *restrict after = g->after + c0;
        for (int j = 0; j < BLOCK; j++) out[j] = bf16_to_float(here[j]) + bf16_to_float(after[j]);
    } else {
        const uint16_t *restrict here = g->here + c0;
        for (int j = 0; j < BLOCK; j++) out[j] = bf16_to_float(here[j]);
    }
}

/* Backward, first pass, one sample: adds the ReLU-masked gradient g and g * (u - mean) to sums per channel. */
static void sample_gradient_sums(const Stage *st, const uint16_t *dcolumns, const float *dpooled, int64_t b,
                                 float *restrict sum_g, float *restrict sum_gd) {
    const int64_t T = st->length, W = st->width, C = st->channels;
    const float *restrict attention = st->s + b * T * W;
    for (int64_t c0 = 0; c0 < C; c0 += BLOCK) {
        float z[BLOCK], g[BLOCK], sg[BLOCK] = {0}, sgd[BLOCK] = {0};
        const float *restrict scale = st->scale + c0, *restrict shift = st->shift + c0, *restrict mean = st->mean + c0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t w = 0; w < W; w++) {
                const Row row = row_at(st, b, t, w);
                const Gradient grad = gradient_at(st, dcolumns, dpooled, b, t, w);
                const float s = attention[t * W + w];
                conv_block(st, &row, c0, z);
                gradient_block(&grad, c0, 1.0f / (float)T, g);
                for (int j = 0; j < BLOCK; j++) {
                    const float u = z[j] * s;
                    const float masked = u * scale[j] + shift[j] <= 0.0f ? 0.0f : g[j];
                    sg[j] += masked;
                    sgd[j] += masked * (u - mean[j]);
                }
            }
        for (int j = 0; j < BLOCK; j++) sum_g[c0 + j] += sg[j], sum_gd[c0 + j] += sgd[j];
    }
}

/* Backward, first pass: per channel, the sums of the ReLU-masked gradient g and of g * (z * s - mean). */
void stage_gradient_sums(Stage st, const uint16_t *dcolumns, const float *dpooled, float *sum_g, float *sum_gd,
                         int threads) {
    const int64_t C = st.channels;
    float *parts = calloc((size_t)threads * 2 * C, sizeof(float));
#pragma omp parallel num_threads(threads)
    {
        float *part = parts + (size_t)omp_get_thread_num() * 2 * C;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < st.batch; b++) sample_gradient_sums(&st, dcolumns, dpooled, b, part, part + C);
    }
    for (int64_t c = 0; c < C; c++) sum_g[c] = 0.0f, sum_gd[c] = 0.0f;
    for (int i = 0; i < threads; i++)
        for (int64_t c = 0; c < C; c++) sum_g[c] += parts[(size_t)i * 2 * C + c], sum_gd[c] += parts[(size_t)i * 2 * C + C + c];
    free(parts);
}

/* The sum of BLOCK values as a tree: the compiler keeps a running sum in order, one lane at a time. */
static inline float block_sum(const float *v) {
#ifdef __AVX512F__
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(v), _mm512_loadu_ps(v + 16)));
#else
    float sum = 0.0f;
    for (int j = 0; j < BLOCK; j++) sum += v[j];
    return sum;
#endif
}

/* Backward, second pass, one sample. `scratch` holds rows * channels + 2 * rows floats; `part` is the thread's
   sums: dbias [C], dtaps [3, C], datt [4]. */
static void sample_input_gradient(const Stage *st, const uint16_t *dcolumns, const float *dpooled, const float *k1_,
                                  const float *k0_, int64_t b, float *scratch, uint16_t *dy, float *part) {
    const int64_t T = st->length, W = st->width, C = st->channels, rows = T * W, first = b * rows;
    const float *restrict attention = st->s + first, *restrict a = st->a + first;
    float *restrict du_rows = scratch, *restrict dp = scratch + rows * C, *restrict da = dp + rows;
    for (int64_t r = 0; r < rows; r++) dp[r] = 0.0f;
    /* batch norm's input gradient du, and the attention's ds = sum over channels of du * z (in dp for now) */
    for (int64_t c0 = 0; c0 < C; c0 += BLOCK) {
        const float *restrict scale = st->scale + c0, *restrict shift = st->shift + c0, *restrict mean = st->mean + c0;
        const float *restrict k1 = k1_ + c0, *restrict k0 = k0_ + c0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t w = 0; w < W; w++) {
                const int64_t r = t * W + w;
                const Row row = row_at(st, b, t, w);
                const Gradient grad = gradient_at(st, dcolumns, dpooled, b, t, w);
                const float s = attention[r];
                float z[BLOCK], g[BLOCK], product[BLOCK];
                float *restrict du = du_rows + r * C + c0;
                conv_block(st, &row, c0, z);
                gradient_block(&grad, c0, 1.0f / (float)T, g);
                for (int j = 0; j < BLOCK; j++) {
                    const float u = z[j] * s;
                    const float masked = u * scale[j] + shift[j] <= 0.0f ? 0.0f : g[j];
                    du[j] = scale[j] * masked - k1[j] * (u - mean[j]) + k0[j];
                    product[j] = du[j] * z[j];
                }
                dp[r] += block_sum(product);
            }
    }
    for (int64_t r = 0; r < rows; r++) dp[r] *= attention[r] * (1.0f - attention[r]);
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
    for (int64_t c0 = 0; c0 < C; c0 += BLOCK) {
        float dbias[BLOCK] = {0}, d0[BLOCK] = {0}, d1[BLOCK] = {0}, d2[BLOCK] = {0};
        for (int64_t t = 0; t < T; t++)
            for (int64_t w = 0; w < W; w++) {
                const int64_t r = t * W + w;
                const float s = attention[r], d = da[r];
                const float *restrict du = du_rows + r * C + c0;
                if (dy) {
                    uint16_t *restrict out = dy + (first + r) * C + c0;
                    for (int j = 0; j < BLOCK; j++) {
                        const float dz = du[j] * s + d;
                        out[j] = float_to_bf16(dz);
                        dbias[j] += dz;
                    }
                } else {
                    const Row row = row_at(st, b, t, w);
                    for (int j = 0; j < BLOCK; j++) {
                        const float dz = du[j] * s + d;
                        dbias[j] += dz;
                        d0[j] += dz * row.x0;
                        d1[j] += dz * row.x1;
                        d2[j] += dz * row.x2;
                    }
                }
            }
        for (int j = 0; j < BLOCK; j++) {
            part[c0 + j] += dbias[j];
            part[C + c0 + j] += d0[j];
            part[2 * C + c0 + j] += d1[j];
            part[3 * C + c0 + j] += d2[j];
        }
    }
}

/* Backward, second pass. du = scale * g - k1 * (u - mean) + k0 is batch norm's input gradient (k1, k0 per
   channel, from the first pass's sums); then the attention's and the bias's. Writes dy (bf16 [rows, channels]) or,
   for the first stage, the convolution's weight gradient dtaps [3, channels]; dbias [channels]; datt [4]. */
void stage_input_gradient(Stage st, const uint16_t *dcolumns, const float *dpooled, const float *k1, const float *k0,
                          uint16_t *dy, float *dtaps, float *dbias, float *datt, int threads) {
    const int64_t C = st.channels, rows = st.length * st.width, per_thread = 4 * C + 4;
    float *parts = calloc((size_t)threads * per_thread, sizeof(float));
#pragma omp parallel num_threads(threads)
    {
        float *scratch = malloc((size_t)(rows * C + 2 * rows) * sizeof(float));
        float *part = parts + (size_t)omp_get_thread_num() * per_thread;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < st.batch; b++) sample_input_gradient(&st, dcolumns, dpooled, k1, k0, b, scratch, dy, part);
        free(scratch);
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
}
