/* df_kernels_avx512.c: placeholder until the SIMD body lands (the ISA reports unavailable). */
#include "df_internal.h"
#if DF_HAVE_X86
const df_kernels_t df_kernels_avx512 = {
    DF_ISA_AVX512, NULL, NULL, NULL, NULL, NULL,
};
#endif
