/* The training steps of a member-batched affine MAF ensemble on the CPU, a pass per call.
 *
 * Forward pass, hand-written backward pass and the Adam update of every member for all
 * the batches of a pass, in one call: one member per OpenMP thread at a time, each
 * member taking the pass's steps in order.  The Python side (models/flows/cpu_step.py)
 * builds this file at first use and calls maf_affine_train_pass through ctypes; the
 * mathematics is that of models/flows/batched_maf.py (nflows' MaskedAutoregressiveFlow,
 * arXiv 1705.07057, MADE conditioners arXiv 1502.03509) and of torch's fused Adam.
 *
 * Why it is fast: a member's weights, Adam moments and activations (B blocks x (D + L*H
 * + 2D) rows x N events, about 0.4 MB at the paper's settings) stay in its core's L2
 * cache for the whole pass; every matrix product runs in 4 x 64 register tiles over
 * events; and the MADE masks are used as ranges: hidden units are taken in order of
 * their degree (the "permuted layout"), so that every row of every masked weight is
 * non-zero on one contiguous range of columns and only that range (over groups of four
 * rows) is computed, about 62 % of the dense products at D = 4, H = 32.  Adam multiplies
 * the gradients by the mask, so masked weights and their moments stay exactly 0.
 *
 * Layout: activations are (rows, events) with events contiguous and padded to a
 * multiple of 16 (one AVX-512 vector); padded events carry weight 0.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VL 16
typedef float v16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));

static const float SCALE_EPSILON = 1e-3f;


/* ------------------------------------------------------------------ vector maths
 * Own float32 exp and log on whole vectors (the C library's are scalar here):
 * exp by x = n ln2 + r, |r| <= ln2/2, Taylor series to r^7 (relative error ~2e-8 before
 * rounding); log(1 + f) = 2 atanh(f / (2 + f)) by its series, with the mantissa taken
 * in [sqrt(1/2), sqrt(2)). */

static inline v16 vselect(vi16 mask, v16 yes, v16 no) { return (v16)((mask & (vi16)yes) | (~mask & (vi16)no)); }

/* exp(x) for x <= 0 (below -87 it returns exp(-87)). */
static inline v16 vexp_nonpositive(v16 x)
{
    const v16 lo = (v16){0} - 87.0f;
    x = vselect(x < lo, lo, x);
    const v16 t = x * 1.44269504088896341f;
    const vi16 n = __builtin_convertvector(t - 0.5f, vi16); /* t < 0: truncation of t - 1/2 rounds */
    const v16 nf = __builtin_convertvector(n, v16);
    const v16 r = (x - nf * 0.693359375f) - nf * -2.12194440e-4f; /* ln 2 in two parts */
    v16 p = 1.0f / 5040.0f + r * 0.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return (v16)((vi16)p + (n << 23));
}

/* 2 atanh(u) = log((1 + u) / (1 - u)), for |u| <= 1/3. */
static inline v16 vtwo_atanh(v16 u)
{
    const v16 u2 = u * u;
    v16 p = 2.0f / 15.0f + u2 * 0.0f;
    p = p * u2 + 2.0f / 13.0f;
    p = p * u2 + 2.0f / 11.0f;
    p = p * u2 + 2.0f / 9.0f;
    p = p * u2 + 2.0f / 7.0f;
    p = p * u2 + 2.0f / 5.0f;
    p = p * u2 + 2.0f / 3.0f;
    p = p * u2 + 2.0f;
    return p * u;
}

/* log(x) for normal x > 0. */
static inline v16 vlog(v16 x)
{
    const vi16 bits = (vi16)x;
    vi16 e = (bits >> 23) - 127;
    v16 m = (v16)((bits & 0x007fffff) | 0x3f800000); /* [1, 2) */
    const vi16 high = m > 1.41421356f;
    m = vselect(high, m * 0.5f, m);
    e = e - high; /* high is -1 where true */
    const v16 f = m - 1.0f;
    return __builtin_convertvector(e, v16) * 0.693147180559945309f + vtwo_atanh(f / (2.0f + f));
}

/* ------------------------------------------------------------------ products */

/* The union [klo, khi) of the column ranges of rows r0 .. r0 + rn - 1. */
static inline void group_range(const int *lo, const int *hi, int r0, int rn, int *klo, int *khi)
{
    *klo = lo[r0];
    *khi = hi[r0];
    for (int q = 1; q < rn; q++) {
        if (lo[r0 + q] < *klo) *klo = lo[r0 + q];
        if (hi[r0 + q] > *khi) *khi = hi[r0 + q];
    }
}

/* out[r][:] = init_r + sum_{k in [lo_r, hi_r)} W[r*rs + k*ks] * in[k][:], r < R
 * (rs = ld, ks = 1: W as stored; rs = 1, ks = ld: its transpose).
 * init_r is bias[r] (0 if bias is NULL) or, with accumulate, out[r][:] itself.
 * Rows are taken four at a time over the union of their ranges: the weights outside a
 * row's own range are exactly zero (masked), so the result is the same.  Afterwards
 * relu (forward) or, with gate, out *= (gate > 0) (ReLU backward). */
static void rows_product(float *restrict out, const float *restrict W, int rs, int ks, const float *restrict bias,
                         const int *lo, const int *hi, const float *restrict in, int R, int NP, int accumulate,
                         int relu, const float *restrict gate)
{
    const int nv = NP / VL;
    for (int r0 = 0; r0 < R; r0 += 4) {
        const int rn = R - r0 < 4 ? R - r0 : 4;
        int klo, khi;
        group_range(lo, hi, r0, rn, &klo, &khi);
        for (int v0 = 0; v0 < nv; v0 += 4) {
            const int vn = nv - v0 < 4 ? nv - v0 : 4;
            v16 acc[4][4];
            for (int q = 0; q < 4; q++) {
                for (int v = 0; v < 4; v++) {
                    if (q < rn && v < vn && accumulate) {
                        acc[q][v] = ((const v16 *)(out + (size_t)(r0 + q) * NP))[v0 + v];
                    } else {
                        const float b = (q < rn && bias) ? bias[r0 + q] : 0.0f;
                        acc[q][v] = (v16){0} + b;
                    }
                }
            }
            if (rn == 4 && vn == 4) {
                for (int k = klo; k < khi; k++) {
                    const v16 *x = (const v16 *)(in + (size_t)k * NP) + v0;
                    const v16 x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
#pragma GCC unroll 4
                    for (int q = 0; q < 4; q++) {
                        const float w = W[(size_t)(r0 + q) * rs + (size_t)k * ks];
                        acc[q][0] += w * x0;
                        acc[q][1] += w * x1;
                        acc[q][2] += w * x2;
                        acc[q][3] += w * x3;
                    }
                }
            } else {
                for (int k = klo; k < khi; k++) {
                    const v16 *x = (const v16 *)(in + (size_t)k * NP) + v0;
                    for (int q = 0; q < rn; q++) {
                        const float w = W[(size_t)(r0 + q) * rs + (size_t)k * ks];
                        for (int v = 0; v < vn; v++) acc[q][v] += w * x[v];
                    }
                }
            }
            for (int q = 0; q < rn; q++) {
                v16 *o = (v16 *)(out + (size_t)(r0 + q) * NP) + v0;
                for (int v = 0; v < vn; v++) {
                    v16 a = acc[q][v];
                    if (relu) a = (v16)((vi16)a & (a > 0.0f));
                    if (gate) {
                        const v16 g = ((const v16 *)(gate + (size_t)(r0 + q) * NP))[v0 + v];
                        a = (v16)((vi16)a & (g > 0.0f));
                    }
                    o[v] = a;
                }
            }
        }
    }
}

static inline float hsum(v16 a)
{
    float s = 0.0f;
    for (int i = 0; i < VL; i++) s += a[i];
    return s;
}

/* dW[r*ldw + k] = sum_n G[r][n] * X[k][n] for k in [klo, khi) of every group of four rows
 * (the union of their ranges; entries outside a row's own range are never applied), and
 * db[r] = sum_n G[r][n]. */
static void grad_product(float *restrict dW, int ldw, float *restrict db, const int *lo, const int *hi,
                         const float *restrict G, const float *restrict X, int R, int NP)
{
    const int nv = NP / VL;
    for (int r = 0; r < R; r++) {
        const v16 *g = (const v16 *)(G + (size_t)r * NP);
        v16 s = {0};
        for (int v = 0; v < nv; v++) s += g[v];
        db[r] = hsum(s);
    }
    for (int r0 = 0; r0 < R; r0 += 4) {
        const int rn = R - r0 < 4 ? R - r0 : 4;
        int klo, khi;
        group_range(lo, hi, r0, rn, &klo, &khi);
        for (int k0 = klo; k0 < khi; k0 += 4) {
            const int kn = khi - k0 < 4 ? khi - k0 : 4;
            v16 acc[4][4];
            for (int q = 0; q < 4; q++)
                for (int j = 0; j < 4; j++) acc[q][j] = (v16){0};
            if (rn == 4 && kn == 4) {
                const v16 *g0 = (const v16 *)(G + (size_t)r0 * NP), *g1 = g0 + nv, *g2 = g1 + nv, *g3 = g2 + nv;
                const v16 *x0 = (const v16 *)(X + (size_t)k0 * NP), *x1 = x0 + nv, *x2 = x1 + nv, *x3 = x2 + nv;
                for (int v = 0; v < nv; v++) {
                    const v16 a0 = g0[v], a1 = g1[v], a2 = g2[v], a3 = g3[v];
                    const v16 b0 = x0[v], b1 = x1[v], b2 = x2[v], b3 = x3[v];
                    acc[0][0] += a0 * b0; acc[0][1] += a0 * b1; acc[0][2] += a0 * b2; acc[0][3] += a0 * b3;
                    acc[1][0] += a1 * b0; acc[1][1] += a1 * b1; acc[1][2] += a1 * b2; acc[1][3] += a1 * b3;
                    acc[2][0] += a2 * b0; acc[2][1] += a2 * b1; acc[2][2] += a2 * b2; acc[2][3] += a2 * b3;
                    acc[3][0] += a3 * b0; acc[3][1] += a3 * b1; acc[3][2] += a3 * b2; acc[3][3] += a3 * b3;
                }
            } else {
                for (int v = 0; v < nv; v++) {
                    for (int q = 0; q < rn; q++) {
                        const v16 a = ((const v16 *)(G + (size_t)(r0 + q) * NP))[v];
                        for (int j = 0; j < kn; j++) acc[q][j] += a * ((const v16 *)(X + (size_t)(k0 + j) * NP))[v];
                    }
                }
            }
            for (int q = 0; q < rn; q++)
                for (int j = 0; j < kn; j++) dW[(size_t)(r0 + q) * ldw + k0 + j] = hsum(acc[q][j]);
        }
    }
}

/* ------------------------------------------------------------------ structure */

/* MADE degrees (models/flows/made.py): inputs 1..D, hidden i % max(1, D-1) + min(1, D-1),
 * output row r (rows [s_0, t_0, s_1, t_1, ...]) has degree r/2 + 1.  Hidden units are
 * used in the stable order of their degree: perm[i'] is the stored index of unit i'. */
typedef struct {
    int D, H, L, B, P;  /* P = 2D output rows */
    int *deg;           /* (H) degree of stored hidden unit */
    int *perm;          /* (H) sorted -> stored */
    int *zero_lo;       /* (max(H, P, D)) zeros */
    int *in_hi;         /* (H) first layer: sorted row i' sees inputs [0, in_hi) */
    int *hid_hi;        /* (H) hidden layers: sorted row sees sorted units [0, hid_hi) */
    int *out_hi;        /* (P) output layer: row sees sorted units [0, out_hi) */
    /* transposed ranges for the input gradients: column c is used by rows [t_lo, R) */
    int *in_t_lo, *in_t_hi;   /* (D) over H sorted rows */
    int *hid_t_lo, *hid_t_hi; /* (H) */
    int *out_t_lo, *out_t_hi; /* (H) over P rows */
} Structure;

static void transposed_ranges(const int *hi, int R, int C, int *t_lo, int *t_hi)
{
    /* rows are sorted so hi[] is non-decreasing: column c is used by rows with hi > c. */
    for (int c = 0; c < C; c++) {
        int first = R;
        for (int r = 0; r < R; r++) {
            if (hi[r] > c) { first = r; break; }
        }
        t_lo[c] = first;
        t_hi[c] = R;
    }
}

static int build_structure(Structure *s, int D, int H, int L, int B)
{
    s->D = D; s->H = H; s->L = L; s->B = B; s->P = 2 * D;
    const int step = D - 1 > 1 ? D - 1 : 1, offset = D - 1 < 1 ? D - 1 : 1;
    const int big = (H > s->P ? H : s->P) > D ? (H > s->P ? H : s->P) : D;
    /* deg, perm, in_hi, hid_hi (H each), zero_lo (big), out_hi (P), in_t_* (2D), hid_t_*, out_t_* (2H each) */
    int *mem = calloc((size_t)(4 * H + big + s->P + 2 * D + 4 * H), sizeof(int));
    if (!mem) return -1;
    s->deg = mem; s->perm = mem + H; s->in_hi = mem + 2 * H; s->hid_hi = mem + 3 * H;
    s->zero_lo = mem + 4 * H;
    int *p = s->zero_lo + big;
    s->out_hi = p; p += s->P;
    s->in_t_lo = p; p += D;
    s->in_t_hi = p; p += D;
    s->hid_t_lo = p; p += H;
    s->hid_t_hi = p; p += H;
    s->out_t_lo = p; p += H;
    s->out_t_hi = p; p += H;
    for (int i = 0; i < H; i++) s->deg[i] = i % step + offset;
    int n = 0;
    for (int d = 0; d <= D; d++)
        for (int i = 0; i < H; i++)
            if (s->deg[i] == d) s->perm[n++] = i;
    for (int i = 0; i < H; i++) {
        const int dg = s->deg[s->perm[i]];
        s->in_hi[i] = dg < D ? dg : D;  /* inputs j with j + 1 <= dg */
        int c = 0;
        for (int j = 0; j < H; j++) c += s->deg[j] <= dg;
        s->hid_hi[i] = c;
    }
    for (int r = 0; r < s->P; r++) {
        const int dg = r / 2 + 1;
        int c = 0;
        for (int j = 0; j < H; j++) c += s->deg[j] < dg;
        s->out_hi[r] = c;
    }
    transposed_ranges(s->in_hi, H, D, s->in_t_lo, s->in_t_hi);
    transposed_ranges(s->hid_hi, H, H, s->hid_t_lo, s->hid_t_hi);
    transposed_ranges(s->out_hi, s->P, H, s->out_t_lo, s->out_t_hi);
    return 0;
}

/* ------------------------------------------------------------------ workspace */

typedef struct {
    float *base;
    size_t capacity; /* floats */
} Workspace;

static _Thread_local Workspace tls_workspace = {NULL, 0};

static float *workspace(size_t floats)
{
    Workspace *w = &tls_workspace;
    if (w->capacity < floats) {
        free(w->base);
        const size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
        w->base = aligned_alloc(64, bytes);
        w->capacity = w->base ? floats : 0;
    }
    return w->base;
}

static inline size_t round16(size_t n) { return (n + 15) / 16 * 16; }

/* ------------------------------------------------------------------ the step */

/* Copy member m of every block between torch's stored tensors (stored[b * (2L + 2) + k],
 * k over [input.weight, input.bias, (hidden.weight, hidden.bias) x (L-1), output.weight,
 * output.bias]) and the permuted layout (hidden units in degree order), either way. */
static void exchange(const Structure *st, float **stored, size_t m, float *permuted, int to_permuted)
{
    const int D = st->D, H = st->H, L = st->L, P = st->P, per_block = 2 * L + 2;
    const size_t n_in = (size_t)H * D, n_hid = (size_t)H * H, n_out = (size_t)P * H;
    float *p = permuted;
#define SWAP_INTO(dst_perm, src_stored) \
    do { if (to_permuted) (dst_perm) = (src_stored); else (src_stored) = (dst_perm); } while (0)
    for (int b = 0; b < st->B; b++) {
        float **lay = stored + (size_t)b * per_block;
        float *Win = lay[0] + m * n_in, *bin = lay[1] + m * H;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < D; j++) SWAP_INTO(p[(size_t)i * D + j], Win[(size_t)st->perm[i] * D + j]);
        for (int i = 0; i < H; i++) SWAP_INTO(p[n_in + i], bin[st->perm[i]]);
        p += n_in + H;
        for (int l = 0; l < L - 1; l++) {
            float *Wh = lay[2 + 2 * l] + m * n_hid, *bh = lay[3 + 2 * l] + m * H;
            for (int i = 0; i < H; i++)
                for (int j = 0; j < H; j++)
                    SWAP_INTO(p[(size_t)i * H + j], Wh[(size_t)st->perm[i] * H + st->perm[j]]);
            for (int i = 0; i < H; i++) SWAP_INTO(p[n_hid + i], bh[st->perm[i]]);
            p += n_hid + H;
        }
        float *Wo = lay[per_block - 2] + m * n_out, *bo = lay[per_block - 1] + m * P;
        for (int r = 0; r < P; r++)
            for (int j = 0; j < H; j++) SWAP_INTO(p[(size_t)r * H + j], Wo[(size_t)r * H + st->perm[j]]);
        for (int r = 0; r < P; r++) SWAP_INTO(p[n_out + r], bo[r]);
        p += n_out + P;
    }
#undef SWAP_INTO
}

/* One pass of n_batches Adam steps: member by member (members in parallel), each member
 * takes all steps of the pass in order, so its weights and Adam moments stay in its
 * core's cache; the members are independent, so the result is that of stepping all
 * members batch by batch.
 * Arguments:
 *   M, B, L, D, H: members, blocks, hidden layers per MADE, features, hidden units;
 *   batch_start: (n_batches + 1) event offsets of the batches, 0 = batch_start[0] < ... ;
 *   x: (M, batch_start[n_batches], D) inputs; w: (M, batch_start[n_batches]) per-event loss
 *     weights (bootstrap);
 *   params, exp_avg, exp_avg_sq: B * (2L + 2) pointers each, per block
 *     [input.weight (M,H,D), input.bias (M,H), (hidden.weight (M,H,H), hidden.bias (M,H)) x (L-1),
 *      output.weight (M,2D,H), output.bias (M,2D)], as torch stores them;
 *   steps: the B * (2L + 2) scalar step counts of Adam's state, each incremented by n_batches;
 *   lr, beta1, beta2, eps: Adam's; step: Adam's step count after the first step (>= 1);
 *   member_loss: (n_batches, M) out, -(1/N) sum_n w_n log p(x_n) of each step before its update.
 * Returns 0; -1 when memory ran out (members may then be partly updated), -2 for an empty
 * batch (nothing is updated).
 */
int maf_affine_train_pass(int M, int B, int L, int D, int H, int n_batches, const int *batch_start,
                          const float *x, const float *w, float **params, float **exp_avg, float **exp_avg_sq,
                          float **steps, double lr, double beta1, double beta2, double eps, double step,
                          float *member_loss)
{
    if (M <= 0 || n_batches <= 0) return 0;
    const int n_total = batch_start[n_batches];
    int largest = 0;
    for (int i = 0; i < n_batches; i++) {
        const int size = batch_start[i + 1] - batch_start[i];
        if (size <= 0) return -2;
        if (size > largest) largest = size;
    }
    Structure st;
    if (build_structure(&st, D, H, L, B) != 0) return -1;
    const int P = 2 * D, per_block = 2 * L + 2;
    const size_t NPmax = round16((size_t)largest);
    /* per-member parameter counts per layer and per block, in the permuted layout
     * [W_in (H,D), b_in (H), (W_h (H,H), b_h (H)) x (L-1), W_out (P,H), b_out (P)] */
    const size_t n_in = (size_t)H * D, n_hid = (size_t)H * H, n_out = (size_t)P * H;
    const size_t block_params = n_in + H + (size_t)(L - 1) * (n_hid + H) + n_out + P;
    const size_t off_out = n_in + H + (size_t)(L - 1) * (n_hid + H);
    const size_t all_params = block_params * B;
    const size_t pstride = round16(all_params); /* keeps the activations 64-byte aligned */
    /* activations per block: input D, hidden L*H, outputs P, scales D */
    const size_t block_rows = (size_t)D + (size_t)L * H + P + D;
    const size_t floats = NPmax * (block_rows * B + D /* z */ + D /* gy */ + P /* gpar */ + 2 * (size_t)H + D /* dinp */ + 2)
                          + 4 * pstride /* weights, two moments, gradients */ + 64;
    const float b1 = (float)beta1, b2 = (float)beta2, fe = (float)eps;

    /* 0/1 mask of one block in the permuted layout (biases 1): Adam multiplies the
     * gradients with it, because the products compute whole 4 x 4 tiles. */
    float *mask = malloc(sizeof(float) * block_params);
    if (!mask) { free(st.deg); return -1; }
    {
        float *q = mask;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < D; j++) *q++ = st.deg[st.perm[i]] >= j + 1;
        for (int i = 0; i < H; i++) *q++ = 1.0f;
        for (int l = 0; l < L - 1; l++) {
            for (int i = 0; i < H; i++)
                for (int j = 0; j < H; j++) *q++ = st.deg[st.perm[i]] >= st.deg[st.perm[j]];
            for (int i = 0; i < H; i++) *q++ = 1.0f;
        }
        for (int r = 0; r < P; r++)
            for (int j = 0; j < H; j++) *q++ = r / 2 + 1 > st.deg[st.perm[j]];
        for (int r = 0; r < P; r++) *q++ = 1.0f;
    }
    int failed = 0;

#pragma omp parallel for schedule(static) reduction(| : failed)
    for (int m = 0; m < M; m++) {
        float *ws = workspace(floats);
        if (!ws) { failed = 1; continue; }
        float *pw = ws;                      /* weights, permuted layout, all blocks */
        float *pm = pw + pstride;            /* Adam's first moments, same layout */
        float *pv = pm + pstride;            /* second moments */
        float *gr = pv + pstride;            /* gradients */
        float *act = gr + pstride;           /* activations, (rows, NP), 64-byte aligned */
        float *tensors[3] = {pw, pm, pv};
        float **stored[3] = {params, exp_avg, exp_avg_sq};
        for (int which = 0; which < 3; which++) exchange(&st, stored[which], (size_t)m, tensors[which], 1);
        /* The products write the same tiles every step; entries outside them stay 0 (they
         * are masked, and a stale NaN there would survive the mask). */
        memset(gr, 0, sizeof(float) * all_params);

        for (int batch = 0; batch < n_batches; batch++) {
            const int N = batch_start[batch + 1] - batch_start[batch];
            const size_t NP = round16((size_t)N);
            const double count = step + batch; /* Adam's step count after this step */
            const float step_size = (float)(lr / (1.0 - pow(beta1, count)));
            const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, count));
            float *z = act + NP * block_rows * B;
            float *gy = z + NP * D, *gpar = gy + NP * D, *gh0 = gpar + NP * P, *gh1 = gh0 + NP * H;
            float *dinp = gh1 + NP * H, *cw = dinp + NP * D, *logdet = cw + NP;

            /* ---- forward */
            const float *xm = x + ((size_t)m * n_total + batch_start[batch]) * D;
            const float *wm = w + (size_t)m * n_total + batch_start[batch];
            float *cur = z; /* the flow's running value, (D, NP), data order */
            for (int d = 0; d < D; d++) {
                float *row = cur + NP * d;
                for (int n = 0; n < N; n++) row[n] = xm[(size_t)n * D + d];
                for (size_t n = N; n < NP; n++) row[n] = 0.0f;
            }
            for (size_t n = 0; n < NP; n++) logdet[n] = 0.0f;
            for (int b = 0; b < B; b++) {
                float *a = act + NP * block_rows * b;
                float *inp = a, *hid = a + NP * D, *par = hid + NP * (size_t)L * H, *scale = par + NP * P;
                const float *p = pw + block_params * b;
                for (int d = 0; d < D; d++) memcpy(inp + NP * d, cur + NP * (D - 1 - d), NP * sizeof(float));
                rows_product(hid, p, D, 1, p + n_in, st.zero_lo, st.in_hi, inp, H, (int)NP, 0, 1, NULL);
                size_t off = n_in + H;
                for (int l = 0; l < L - 1; l++) {
                    rows_product(hid + NP * H * (l + 1), p + off, H, 1, p + off + n_hid, st.zero_lo, st.hid_hi,
                                 hid + NP * H * l, H, (int)NP, 0, 1, NULL);
                    off += n_hid + H;
                }
                rows_product(par, p + off_out, H, 1, p + off_out + n_out, st.zero_lo, st.out_hi,
                             hid + NP * H * (L - 1), P, (int)NP, 0, 0, NULL);
                /* scale = softplus(s) + eps, softplus(s) = max(s, 0) + log1p(exp(-|s|)); the s row
                 * is overwritten with softplus'(s) = sigmoid(s) for the backward pass. */
                for (int d = 0; d < D; d++) {
                    v16 *s = (v16 *)(par + NP * (2 * d));
                    const v16 *t = (const v16 *)(par + NP * (2 * d + 1)), *xi = (const v16 *)(inp + NP * d);
                    v16 *sc = (v16 *)(scale + NP * d), *y = (v16 *)(cur + NP * d), *ld = (v16 *)logdet;
                    for (size_t v = 0; v < NP / VL; v++) {
                        const v16 sv = s[v];
                        const vi16 positive = sv > 0.0f;
                        const v16 e = vexp_nonpositive(vselect(positive, -sv, sv)); /* exp(-|s|) */
                        const v16 soft = (v16)((vi16)sv & positive) + vtwo_atanh(e / (2.0f + e));
                        const v16 c = soft + SCALE_EPSILON;
                        sc[v] = c;
                        y[v] = c * xi[v] + t[v];
                        ld[v] += vlog(c);
                        s[v] = vselect(positive, (v16){0} + 1.0f, e) / (1.0f + e);
                    }
                }
            }
            /* log p = log|det| - |z|^2 / 2 - D log(2 pi) / 2; loss = -(1/N) sum w log p */
            const float half_log_2pi = 0.91893853320467274178f;
            double loss = 0.0;
            for (int n = 0; n < N; n++) {
                float q = 0.0f;
                for (int d = 0; d < D; d++) q += cur[NP * d + n] * cur[NP * d + n];
                const float lp = logdet[n] - 0.5f * q - half_log_2pi * D;
                loss -= (double)wm[n] * lp;
                cw[n] = -wm[n] / (float)N; /* dL / dlog p */
            }
            for (size_t n = N; n < NP; n++) cw[n] = 0.0f;
            member_loss[(size_t)batch * M + m] = (float)(loss / N);

            /* ---- backward: gy = dL/d(block output), starting from dL/dz = -cw z */
            for (int d = 0; d < D; d++)
                for (size_t n = 0; n < NP; n++) gy[NP * d + n] = -cw[n] * cur[NP * d + n];
            for (int b = B - 1; b >= 0; b--) {
                float *a = act + NP * block_rows * b;
                float *inp = a, *hid = a + NP * D, *par = hid + NP * (size_t)L * H, *scale = par + NP * P;
                const float *p = pw + block_params * b;
                float *g = gr + block_params * b;
                for (int d = 0; d < D; d++) {
                    const v16 *sig = (const v16 *)(par + NP * (2 * d)), *sc = (const v16 *)(scale + NP * d);
                    const v16 *xi = (const v16 *)(inp + NP * d), *gyd = (const v16 *)(gy + NP * d), *c = (const v16 *)cw;
                    v16 *gs = (v16 *)(gpar + NP * (2 * d)), *gt = (v16 *)(gpar + NP * (2 * d + 1)), *gi = (v16 *)(dinp + NP * d);
                    for (size_t v = 0; v < NP / VL; v++) {
                        gs[v] = (gyd[v] * xi[v] + c[v] / sc[v]) * sig[v];
                        gt[v] = gyd[v];
                        gi[v] = gyd[v] * sc[v];
                    }
                }
                const float *top = hid + NP * H * (L - 1);
                grad_product(g + off_out, H, g + off_out + n_out, st.zero_lo, st.out_hi, gpar, top, P, (int)NP);
                /* g_L = (W_out^T gpar) * (h_L > 0) */
                float *gcur = gh0, *gnext = gh1;
                rows_product(gcur, p + off_out, 1, H, NULL, st.out_t_lo, st.out_t_hi, gpar, H, (int)NP, 0, 0, top);
                for (int l = L - 2; l >= 0; l--) {
                    const size_t off = n_in + H + (size_t)l * (n_hid + H);
                    const float *below = hid + NP * H * l;
                    grad_product(g + off, H, g + off + n_hid, st.zero_lo, st.hid_hi, gcur, below, H, (int)NP);
                    rows_product(gnext, p + off, 1, H, NULL, st.hid_t_lo, st.hid_t_hi, gcur, H, (int)NP, 0, 0, below);
                    float *swap = gcur; gcur = gnext; gnext = swap;
                }
                grad_product(g, D, g + n_in, st.zero_lo, st.in_hi, gcur, inp, H, (int)NP);
                if (b > 0) {
                    rows_product(dinp, p, 1, D, NULL, st.in_t_lo, st.in_t_hi, gcur, D, (int)NP, 1, 0, NULL);
                    for (int d = 0; d < D; d++) memcpy(gy + NP * (D - 1 - d), dinp + NP * d, NP * sizeof(float));
                }
            }

            /* ---- Adam (torch's fused formula). Masked entries get gradient 0, so their
             * moments stay 0 and their weights (0) unchanged, as with torch. */
            for (int b = 0; b < B; b++) {
                const float *restrict g = gr + block_params * b;
                float *restrict pp = pw + block_params * b, *restrict ma = pm + block_params * b;
                float *restrict va = pv + block_params * b;
                for (size_t e = 0; e < block_params; e++) {
                    const float gv = g[e] * mask[e];
                    const float mv = ma[e] + (1.0f - b1) * (gv - ma[e]);
                    const float vv = b2 * va[e] + (1.0f - b2) * gv * gv;
                    ma[e] = mv;
                    va[e] = vv;
                    pp[e] -= step_size * mv / (sqrtf(vv) / bc2_sqrt + fe);
                }
            }
        } /* batch */
        for (int which = 0; which < 3; which++) exchange(&st, stored[which], (size_t)m, tensors[which], 0);
    }
    for (int i = 0; i < B * per_block; i++) *steps[i] += (float)n_batches;
    free(mask);
    free(st.deg);
    return failed ? -1 : 0;
}
