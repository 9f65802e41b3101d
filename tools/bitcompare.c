/* Bit comparison harness for the kernel ABI (SPEC "Platforms"), used by tools/test_aarch64.sh.
 *
 * Linked with the variant objects (fastselu/_simd_<isa>.c compiled on their own with the SPEC's
 * flags) and libm alone.  Built once for the host (x86-64) and once for aarch64 (run under
 * qemu-user); the two outputs must be identical.
 *
 *   bitcompare f32 VARIANT...        every float32 input (2^32), forward and backward from x at
 *                                    grad_output = 1: one line per block of 2^24 inputs with a
 *                                    64-bit hash of the outputs' bits (BITCOMPARE_STRIDE=k: every
 *                                    k-th block only, a sample for slow emulated variants).
 *                                    Each step of the hash is a bijection of its state for a
 *                                    given word, so outputs differing in one word always give
 *                                    different hashes; several differences collide with
 *                                    probability about 2^-64.
 *   bitcompare f64 IN OUT VARIANT... float64 inputs from file IN (x, then g, each n doubles):
 *                                    writes forward(x), backward_x(1, x), backward_x(g, x) and
 *                                    backward_y(g, forward(x)) to OUT.VARIANT (raw bits)
 *   bitcompare h16 OUT VARIANT...    every float16 and every bfloat16 input (2^16 each): writes
 *                                    forward(x), backward_x(1, x) and backward_y(1, forward(x))
 *                                    per format to OUT.VARIANT (raw bits)
 *   bitcompare drop IN OUT VARIANT... the AlphaDropout kernels on inputs from file IN (int64 m,
 *                                    n32, n64; m float32-result and m float64-result parameter
 *                                    arrays of fastselu/_dropout.py's layout, 38 doubles each;
 *                                    x32, g32 (n32 floats); x64, g64 (n64 doubles)): for each
 *                                    parameter set, both forwards (fused, not, and fused with
 *                                    feature-style inner = 3) and the three backward modes, a
 *                                    nonzero start, to OUT.VARIANT (raw bits)
 *   bitcompare f32dump BLOCK VARIANT OUT  one block's raw outputs (to find a mismatch)
 *
 * A VARIANT the CPU lacks is reported as "skip" (fs_variant_supported).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "_dispatch.h"

#define BLOCK_BITS 24
#define BLOCK ((size_t)1 << BLOCK_BITS)
#define NBLOCKS ((size_t)1 << (32 - BLOCK_BITS))

static int find(const char *name)
{
    for (int i = 0; i < fs_num_variants(); i++)
        if (strcmp(fs_variant(i)->name, name) == 0) return fs_variant_supported(i) ? i : -2;
    return -1;
}

/* The variant called name, or NULL when it is not built or this CPU lacks it (said on stdout) */
static const fs_kernels *pick(const char *name)
{
    int vi = find(name);
    if (vi < 0) printf("%s %s\n", name, vi == -1 ? "not-built" : "skip");
    return vi < 0 ? NULL : fs_variant(vi);
}

static uint64_t hash32(const float *v, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &v[i], 4);
        h = (h ^ b) * 0x100000001B3ull;
        h ^= h >> 29;
    }
    return h;
}

static size_t bitrev(size_t i)  /* over the 32 - BLOCK_BITS bits of a block number */
{
    size_t r = 0;
    for (int b = 0; b < 32 - BLOCK_BITS; b++) r |= ((i >> b) & 1u) << (32 - BLOCK_BITS - 1 - b);
    return r;
}

static void f32_block(const fs_kernels *k, size_t blk, float *x, float *g, float *o1, float *o2)
{
    for (size_t i = 0; i < BLOCK; i++) {
        uint32_t b = (uint32_t)((blk << BLOCK_BITS) | i);
        memcpy(&x[i], &b, 4);
        g[i] = 1.0f;
    }
    k->forward_f32(x, o1, (ptrdiff_t)BLOCK);
    k->backward_x_f32(g, x, o2, (ptrdiff_t)BLOCK);
}

static int run_f32(int argc, char **argv)
{
    for (int a = 0; a < argc; a++) {
        const fs_kernels *k = pick(argv[a]);
        if (!k) continue;
        const char *st = getenv("BITCOMPARE_STRIDE");
        long stride = st && atol(st) > 0 ? atol(st) : 1;
        /* Blocks in bit-reversed order, each line printed (and flushed) as its block finishes:
         * a run stopped early has compared a sample spread over signs and exponents, and says
         * which blocks.  Lines come out of order; the caller compares them as sets. */
        #pragma omp parallel
        {
            float *x = malloc(BLOCK * 4), *g = malloc(BLOCK * 4);
            float *o1 = malloc(BLOCK * 4), *o2 = malloc(BLOCK * 4);
            #pragma omp for schedule(dynamic)
            for (long i = 0; i < (long)NBLOCKS; i++) {
                size_t blk = bitrev((size_t)i);
                if (blk % (size_t)stride) continue;
                f32_block(k, blk, x, g, o1, o2);
                unsigned long long hf = hash32(o1, BLOCK), hb = hash32(o2, BLOCK);
                #pragma omp critical
                {
                    printf("f32 %zu fwd %016llx bwd %016llx\n", blk, hf, hb);
                    fflush(stdout);
                }
            }
            free(x); free(g); free(o1); free(o2);
        }
        fprintf(stderr, "bitcompare: %s float32 done\n", argv[a]);
    }
    return 0;
}

static int run_f32dump(const char *blks, const char *name, const char *out)
{
    int vi = find(name);
    if (vi < 0) return fprintf(stderr, "variant %s unavailable\n", name), 2;
    float *x = malloc(BLOCK * 4), *g = malloc(BLOCK * 4), *o1 = malloc(BLOCK * 4),
          *o2 = malloc(BLOCK * 4);
    f32_block(fs_variant(vi), (size_t)strtoul(blks, NULL, 10), x, g, o1, o2);
    FILE *f = fopen(out, "wb");
    if (!f) return perror(out), 2;
    fwrite(o1, 4, BLOCK, f);
    fwrite(o2, 4, BLOCK, f);
    fclose(f);
    return 0;
}

/* out.VARIANT <- count items of size bytes from r; 0 or 2 (the message printed) */
static int save(const char *out, const char *variant, const void *r, size_t size, size_t count)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s", out, variant);
    FILE *o = fopen(path, "wb");
    if (!o) return perror(path), 2;
    fwrite(r, size, count, o);
    fclose(o);
    return 0;
}

static int run_f64(const char *in, const char *out, int argc, char **argv)
{
    FILE *f = fopen(in, "rb");
    if (!f) return perror(in), 2;
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f) / 16;
    fseek(f, 0, SEEK_SET);
    double *x = malloc(n * 8), *g = malloc(n * 8), *one = malloc(n * 8), *r = malloc(4 * n * 8);
    if (fread(x, 8, n, f) != n || fread(g, 8, n, f) != n) return fprintf(stderr, "short\n"), 2;
    fclose(f);
    for (size_t i = 0; i < n; i++) one[i] = 1.0;
    for (int a = 0; a < argc; a++) {
        const fs_kernels *k = pick(argv[a]);
        if (!k) continue;
        k->forward_f64(x, r, (ptrdiff_t)n);
        k->backward_x_f64(one, x, r + n, (ptrdiff_t)n);
        k->backward_x_f64(g, x, r + 2 * n, (ptrdiff_t)n);
        k->backward_y_f64(g, r, r + 3 * n, (ptrdiff_t)n);
        if (save(out, argv[a], r, 8, 4 * n)) return 2;
        printf("%s f64 %zu inputs -> %s.%s\n", argv[a], n, out, argv[a]);
    }
    return 0;
}

static int run_h16(const char *out, int argc, char **argv)
{
    enum { N = 1 << 16 };
    static uint16_t x[N], one[N], r[6 * N];
    for (size_t i = 0; i < N; i++) x[i] = (uint16_t)i;
    for (int a = 0; a < argc; a++) {
        const fs_kernels *k = pick(argv[a]);
        if (!k) continue;
        k->half_init();
        for (size_t i = 0; i < N; i++) one[i] = 0x3C00; /* float16 1.0 */
        k->forward_f16(x, r, N);
        k->backward_x_f16(one, x, r + N, N);
        k->backward_y_f16(one, r, r + 2 * N, N);
        for (size_t i = 0; i < N; i++) one[i] = 0x3F80; /* bfloat16 1.0 */
        k->forward_bf16(x, r + 3 * N, N);
        k->backward_x_bf16(one, x, r + 4 * N, N);
        k->backward_y_bf16(one, r + 3 * N, r + 5 * N, N);
        if (save(out, argv[a], r, 2, 6 * N)) return 2;
        printf("%s h16 %d inputs x 2 formats -> %s.%s\n", argv[a], N, out, argv[a]);
    }
    return 0;
}

#define N_PARAMS 38  /* fastselu/_dropout.py's N_PARAMS (tests check the header's FS_N_PARAMS) */
static int run_drop(const char *in, const char *out, int argc, char **argv)
{
    FILE *f = fopen(in, "rb");
    if (!f) return perror(in), 2;
    int64_t hdr[3];
    if (fread(hdr, 8, 3, f) != 3) return fprintf(stderr, "short\n"), 2;
    size_t m = (size_t)hdr[0], n32 = (size_t)hdr[1], n64 = (size_t)hdr[2];
    double *prm = malloc(2 * m * N_PARAMS * 8);
    float *x32 = malloc(n32 * 4), *g32 = malloc(n32 * 4);
    double *x64 = malloc(n64 * 8), *g64 = malloc(n64 * 8);
    if (fread(prm, 8, 2 * m * N_PARAMS, f) != 2 * m * N_PARAMS || fread(x32, 4, n32, f) != n32
        || fread(g32, 4, n32, f) != n32 || fread(x64, 8, n64, f) != n64
        || fread(g64, 8, n64, f) != n64)
        return fprintf(stderr, "short\n"), 2;
    fclose(f);
    size_t per = 6 * (n32 * 4 + n64 * 8);
    unsigned char *r = malloc(m * per);
    for (int a = 0; a < argc; a++) {
        const fs_kernels *k = pick(argv[a]);
        if (!k) continue;
        unsigned char *w = r;
        for (size_t j = 0; j < m; j++) {
            const double *p32 = prm + j * N_PARAMS, *p64 = prm + (m + j) * N_PARAMS;
            for (int c = 0; c < 3; c++) {  /* (fused, inner): (0, 1), (1, 1), (1, 3) */
                k->dropout_f32(x32, (float *)w, (ptrdiff_t)n32, p32, 0x9E3779B9u, 7u,
                               (int64_t)1 << 33, c == 2 ? 3 : 1, c > 0);
                w += n32 * 4;
                k->dropout_f64(x64, (double *)w, (ptrdiff_t)n64, p64, 0x9E3779B9u, 7u, 5,
                               c == 2 ? 3 : 1, c > 0);
                w += n64 * 8;
            }
            for (int mode = 0; mode < 3; mode++) {
                k->dropout_bwd_f32(g32, x32, (float *)w, (ptrdiff_t)n32, p32, 1u, 0u, 11, 1, mode);
                w += n32 * 4;
                k->dropout_bwd_f64(g64, x64, (double *)w, (ptrdiff_t)n64, p64, 1u, 0u, 11, 1, mode);
                w += n64 * 8;
            }
        }
        if (save(out, argv[a], r, 1, m * per)) return 2;
        printf("%s drop %zu x (%zu + %zu) inputs -> %s.%s\n", argv[a], m, n32, n64, out, argv[a]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "f32") == 0) return run_f32(argc - 2, argv + 2);
    if (argc >= 5 && strcmp(argv[1], "f64") == 0) return run_f64(argv[2], argv[3], argc - 4, argv + 4);
    if (argc >= 4 && strcmp(argv[1], "h16") == 0) return run_h16(argv[2], argc - 3, argv + 3);
    if (argc >= 5 && strcmp(argv[1], "drop") == 0) return run_drop(argv[2], argv[3], argc - 4, argv + 4);
    if (argc == 5 && strcmp(argv[1], "f32dump") == 0) return run_f32dump(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: see the comment at the top of tools/bitcompare.c\n");
    return 2;
}
