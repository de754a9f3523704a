/* df_dispatch.c: CPU features read once -> the kernel table of each call.
 * The only global state of the library is the resolved default below. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "df_internal.h"

static int cpu_has(df_isa_t isa)
{
    switch (isa) {
    case DF_ISA_SCALAR:
        return 1;
#if DF_HAVE_X86 && defined(__GNUC__)
    /* __builtin_cpu_supports also checks that the OS saves the wider registers. */
    case DF_ISA_AVX2:
        return __builtin_cpu_supports("avx2");
    case DF_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
    case DF_ISA_NEON: /* part of the AArch64 base */
        return DF_HAVE_NEON;
    default:
        return 0;
    }
}

static const df_kernels_t *table_of(df_isa_t isa)
{
    switch (isa) {
    case DF_ISA_SCALAR:
        return &df_kernels_scalar;
#if DF_HAVE_X86
    case DF_ISA_AVX2:
        return &df_kernels_avx2;
    case DF_ISA_AVX512:
        return &df_kernels_avx512;
#endif
#if DF_HAVE_NEON
    case DF_ISA_NEON:
        return &df_kernels_neon;
#endif
    default:
        return NULL;
    }
}

int df_isa_available(df_isa_t isa)
{
    return table_of(isa) != NULL && cpu_has(isa);
}

static df_isa_t resolve_default(void)
{
    const char *env = getenv("DROPOUT_FAST_ISA");
    static const df_isa_t named[] = {DF_ISA_SCALAR, DF_ISA_AVX2, DF_ISA_AVX512, DF_ISA_NEON};
    if (env != NULL)
        for (size_t i = 0; i < sizeof named / sizeof named[0]; ++i)
            if (strcmp(env, df_isa_name(named[i])) == 0 && df_isa_available(named[i]))
                return named[i];
    if (df_isa_available(DF_ISA_AVX512))
        return DF_ISA_AVX512;
    if (df_isa_available(DF_ISA_AVX2))
        return DF_ISA_AVX2;
    if (df_isa_available(DF_ISA_NEON))
        return DF_ISA_NEON;
    return DF_ISA_SCALAR;
}

/* -2: not resolved yet. Resolution is idempotent, so a race only repeats it. */
static atomic_int default_isa = -2;

df_isa_t df_isa_default(void)
{
    int isa = atomic_load_explicit(&default_isa, memory_order_acquire);
    if (isa == -2) {
        isa = (int)resolve_default();
        atomic_store_explicit(&default_isa, isa, memory_order_release);
    }
    return (df_isa_t)isa;
}

const char *df_isa_name(df_isa_t isa)
{
    switch (isa) {
    case DF_ISA_SCALAR:
        return "scalar";
    case DF_ISA_AVX2:
        return "avx2";
    case DF_ISA_AVX512:
        return "avx512";
    case DF_ISA_NEON:
        return "neon";
    default:
        return "unknown";
    }
}

const df_kernels_t *df_kernels_get(int isa)
{
    if (isa == DF_ISA_AUTO)
        isa = (int)df_isa_default();
    return df_isa_available((df_isa_t)isa) ? table_of((df_isa_t)isa) : NULL;
}

/* 0: not read yet. Read once, like the ISA (racing readers compute the same). */
static atomic_ullong stream_min = 0;

uint64_t df_stream_min_bytes(void)
{
    unsigned long long v = atomic_load_explicit(&stream_min, memory_order_relaxed);
    if (v == 0) {
        const char *env = getenv("DROPOUT_FAST_STREAM_MIN_BYTES"); /* tests, tuning */
        v = env != NULL ? strtoull(env, NULL, 10) : 0;
        if (v == 0)
            v = DF_STREAM_MIN_BYTES;
        atomic_store_explicit(&stream_min, v, memory_order_relaxed);
    }
    return v;
}
