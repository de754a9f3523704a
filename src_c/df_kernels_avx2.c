/* df_kernels_avx2.c: placeholder until the SIMD body lands (the ISA reports unavailable). */
#include "df_internal.h"
#if DF_HAVE_X86
const df_kernels_t df_kernels_avx2 = {
    DF_ISA_AVX2, NULL, NULL, NULL, NULL, NULL,
};
#endif
