# Declarations of src_c/dropout_fast.h for Cython. No logic here.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

cdef extern from "dropout_fast.h" nogil:
    const int DF_VERSION_NUMBER
    const char *DF_VERSION_STRING

    ctypedef enum df_status_t:
        DF_OK
        DF_ERR_ARG
        DF_ERR_THRESH
        DF_ERR_ISA
        DF_ERR_RANGE
        DF_ERR_ROUNDS
        DF_ERR_SHAPE

    ctypedef enum df_isa_t:
        DF_ISA_AUTO
        DF_ISA_SCALAR
        DF_ISA_AVX2
        DF_ISA_AVX512
        DF_ISA_NEON

    ctypedef struct df_key_t:
        uint32_t k0
        uint32_t k1

    ctypedef struct df_block_t:
        uint64_t lo
        uint32_t hi

    ctypedef struct df_opts_t:
        int nthreads
        int isa

    const char *df_version() noexcept
    const char *df_status_str(df_status_t status) noexcept
    int df_isa_available(df_isa_t isa) noexcept
    df_isa_t df_isa_default() noexcept
    const char *df_isa_name(df_isa_t isa) noexcept
    int df_has_openmp() noexcept
    int df_max_threads() noexcept
    uint64_t df_threshold(double p) noexcept
    df_status_t df_philox4x32(const uint32_t *ctr, const uint32_t *key, uint32_t *out,
                              int64_t n, int rounds) noexcept
    df_status_t df_dropout_mask(uint8_t *bits, int64_t n, df_key_t key, df_block_t block0,
                                uint64_t thresh, const df_opts_t *opts) noexcept
    df_status_t df_dropout_fwd_f32(const float *x, float *y, uint8_t *bits, int64_t n,
                                   df_key_t key, df_block_t block0, uint64_t thresh,
                                   float scale, const df_opts_t *opts) noexcept
    df_status_t df_dropout_fwd_f64(const double *x, double *y, uint8_t *bits, int64_t n,
                                   df_key_t key, df_block_t block0, uint64_t thresh,
                                   double scale, const df_opts_t *opts) noexcept
    df_status_t df_dropout_bwd_bits_f32(const float *dy, float *dx, const uint8_t *bits,
                                        int64_t n, float scale, const df_opts_t *opts) noexcept
    df_status_t df_dropout_bwd_bits_f64(const double *dy, double *dx, const uint8_t *bits,
                                        int64_t n, double scale, const df_opts_t *opts) noexcept

    const int DF_MAX_DIMS
    df_status_t df_bcast_apply_f32(const float *x, float *y, const uint8_t *bits, int ndim,
                                   const int64_t *shape, const int64_t *noise_shape,
                                   float a, float b, float c, const df_opts_t *opts) noexcept
    df_status_t df_bcast_apply_f64(const double *x, double *y, const uint8_t *bits, int ndim,
                                   const int64_t *shape, const int64_t *noise_shape,
                                   double a, double b, double c, const df_opts_t *opts) noexcept

    df_status_t df_gaussian_fwd_f32(const float *x, float *y, int64_t n, df_key_t key,
                                    df_block_t block0, double sigma,
                                    const df_opts_t *opts) noexcept
    df_status_t df_gaussian_fwd_f64(const double *x, double *y, int64_t n, df_key_t key,
                                    df_block_t block0, double sigma,
                                    const df_opts_t *opts) noexcept
