#!/usr/bin/env bash
# Cross-compile the C library and every tests/c/test_*.c for aarch64 with Debian's
# gcc-aarch64-linux-gnu, and run the tests under qemu-aarch64 (Debian's qemu-user)
# through CTest (CMAKE_CROSSCOMPILING_EMULATOR). test_vectors checks the stored
# known answers of tests/data there as on x86-64, with the scalar and the NEON
# bodies (df_kernels_neon.c; df_kernels_avx*.c compile to nothing), and test_kat
# checks NEON against scalar: masks and outputs must be bit-identical to the
# oracle's, hence to x86-64's.
#
#   tests/c/cross_aarch64.sh [BUILD_DIR]        (default: build/aarch64)
#
# Environment: CROSS_CC (aarch64-linux-gnu-gcc), QEMU (qemu-aarch64), SYSROOT
# (/usr/aarch64-linux-gnu), CMAKE (cmake), CTEST (ctest). The tests run with
# DF_TEST_LIGHT=1: qemu runs scalar code several times slower than the host, and a
# test program may read it to use smaller sizes. Exit status 77 when a tool is
# missing (the caller decides whether that is a skip).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build/aarch64}
cc=${CROSS_CC:-aarch64-linux-gnu-gcc}
qemu=${QEMU:-qemu-aarch64}
sysroot=${SYSROOT:-/usr/aarch64-linux-gnu}
cmake=${CMAKE:-cmake}
ctest=${CTEST:-ctest}

for tool in "$cc" "$qemu" "$cmake" "$ctest" readelf; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "cross_aarch64.sh: $tool not found" >&2
        exit 77
    fi
done
if [ ! -d "$sysroot" ]; then
    echo "cross_aarch64.sh: no aarch64 sysroot at $sysroot (libc6-dev-arm64-cross)" >&2
    exit 77
fi

"$cmake" -S "$root/src_c" -B "$build" \
    -DCMAKE_SYSTEM_NAME=Linux \
    -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
    -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_FIND_ROOT_PATH="$sysroot" \
    -DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER \
    -DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY \
    -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY \
    -DCMAKE_CROSSCOMPILING_EMULATOR="$qemu;-L;$sysroot" \
    -DCMAKE_BUILD_TYPE=Release
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
"$cmake" --build "$build" --parallel "$jobs"

# What was built is aarch64 code, not the host's.
for f in "$build/libdropout_fast.so" "$build/test_vectors"; do
    machine=$(readelf -h "$f" | sed -n 's/^ *Machine: *//p')
    if [ "$machine" != "AArch64" ]; then
        echo "cross_aarch64.sh: $f is built for '$machine', not AArch64" >&2
        exit 1
    fi
done

DF_TEST_LIGHT=1 "$ctest" --test-dir "$build" --output-on-failure --parallel "$jobs"
echo "cross_aarch64.sh: aarch64 build and tests under $qemu: ok"
