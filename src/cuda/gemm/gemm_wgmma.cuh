// FlashOmni CUDA layer (GEMM): the wgmma instructions of the consumer mainloop (unrolled
// operand lists: m64n256k16 and m64n128k16, A and B from swizzled shared memory, fp32
// accumulators, bf16 or fp16 inputs). The accumulator is always a 128-register array; the n128
// form uses its first 64 registers, in the same fragment layout as the first 128 columns of n256.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace flashomni::cuda::gemm {

// d = A(64 x 16, desc_a) * B(16 x N, desc_b) + scale_d * d, scale_d 1 or 0 (0: d's old values are
// ignored, which starts a chain from zero without writing the registers first; see
// consume_k_blocks).
template <int kN, typename T>
__device__ __forceinline__ void wgmma_ss(float (&d)[128], uint64_t desc_a, uint64_t desc_b,
                                         int32_t scale_d);

template <>
__device__ __forceinline__ void wgmma_ss<256, __nv_bfloat16>(float (&d)[128], uint64_t desc_a,
                                                             uint64_t desc_b, int32_t scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, "
      "%127"
      "}, %128, %129, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
        "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
        "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
        "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]),
        "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]),
        "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]),
        "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]),
        "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]),
        "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
        "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]),
        "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]),
        "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]),
        "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

template <>
__device__ __forceinline__ void wgmma_ss<256, __half>(float (&d)[128], uint64_t desc_a,
                                                      uint64_t desc_b, int32_t scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, "
      "%127"
      "}, %128, %129, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
        "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
        "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
        "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]),
        "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]),
        "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]),
        "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]),
        "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]),
        "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
        "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]),
        "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]),
        "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]),
        "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// m64n128k16 on the 64 registers d[kOffset, kOffset + 64): kOffset 0 is the n128 form of
// wgmma_ss; a tall GEMM-Q item (kTallItem) also chains its warpgroup's second 64 rows into
// d[64, 128), so one 128-register array holds 128 rows x 128 columns. One operand list for both
// input types (kType: the PTX type name).
#define FLASHOMNI_WGMMA_M64N128(kType)                                                             \
  asm volatile(                                                                                    \
      "{\n"                                                                                        \
      ".reg .pred p;\n"                                                                            \
      "setp.ne.b32 p, %66, 0;\n"                                                                   \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." kType "." kType                               \
      " "                                                                                          \
      "{"                                                                                          \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                     \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "           \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "           \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"             \
      "}, %64, %65, p, 1, 1, 0, 0;\n"                                                              \
      "}\n"                                                                                        \
      : "+f"(d[kOffset + 0]), "+f"(d[kOffset + 1]), "+f"(d[kOffset + 2]), "+f"(d[kOffset + 3]),    \
        "+f"(d[kOffset + 4]), "+f"(d[kOffset + 5]), "+f"(d[kOffset + 6]), "+f"(d[kOffset + 7]),    \
        "+f"(d[kOffset + 8]), "+f"(d[kOffset + 9]), "+f"(d[kOffset + 10]), "+f"(d[kOffset + 11]),  \
        "+f"(d[kOffset + 12]), "+f"(d[kOffset + 13]), "+f"(d[kOffset + 14]),                       \
        "+f"(d[kOffset + 15]), "+f"(d[kOffset + 16]), "+f"(d[kOffset + 17]),                       \
        "+f"(d[kOffset + 18]), "+f"(d[kOffset + 19]), "+f"(d[kOffset + 20]),                       \
        "+f"(d[kOffset + 21]), "+f"(d[kOffset + 22]), "+f"(d[kOffset + 23]),                       \
        "+f"(d[kOffset + 24]), "+f"(d[kOffset + 25]), "+f"(d[kOffset + 26]),                       \
        "+f"(d[kOffset + 27]), "+f"(d[kOffset + 28]), "+f"(d[kOffset + 29]),                       \
        "+f"(d[kOffset + 30]), "+f"(d[kOffset + 31]), "+f"(d[kOffset + 32]),                       \
        "+f"(d[kOffset + 33]), "+f"(d[kOffset + 34]), "+f"(d[kOffset + 35]),                       \
        "+f"(d[kOffset + 36]), "+f"(d[kOffset + 37]), "+f"(d[kOffset + 38]),                       \
        "+f"(d[kOffset + 39]), "+f"(d[kOffset + 40]), "+f"(d[kOffset + 41]),                       \
        "+f"(d[kOffset + 42]), "+f"(d[kOffset + 43]), "+f"(d[kOffset + 44]),                       \
        "+f"(d[kOffset + 45]), "+f"(d[kOffset + 46]), "+f"(d[kOffset + 47]),                       \
        "+f"(d[kOffset + 48]), "+f"(d[kOffset + 49]), "+f"(d[kOffset + 50]),                       \
        "+f"(d[kOffset + 51]), "+f"(d[kOffset + 52]), "+f"(d[kOffset + 53]),                       \
        "+f"(d[kOffset + 54]), "+f"(d[kOffset + 55]), "+f"(d[kOffset + 56]),                       \
        "+f"(d[kOffset + 57]), "+f"(d[kOffset + 58]), "+f"(d[kOffset + 59]),                       \
        "+f"(d[kOffset + 60]), "+f"(d[kOffset + 61]), "+f"(d[kOffset + 62]), "+f"(d[kOffset + 63]) \
      : "l"(desc_a), "l"(desc_b), "r"(scale_d))

template <typename T, int kOffset>
__device__ __forceinline__ void wgmma_m64n128(float (&d)[128], uint64_t desc_a, uint64_t desc_b,
                                              int32_t scale_d) {
  static_assert(kOffset == 0 || kOffset == 64, "one of the two 64-register halves");
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    FLASHOMNI_WGMMA_M64N128("bf16");
  } else {
    FLASHOMNI_WGMMA_M64N128("f16");
  }
}
#undef FLASHOMNI_WGMMA_M64N128

template <>
__device__ __forceinline__ void wgmma_ss<128, __nv_bfloat16>(float (&d)[128], uint64_t desc_a,
                                                             uint64_t desc_b, int32_t scale_d) {
  wgmma_m64n128<__nv_bfloat16, 0>(d, desc_a, desc_b, scale_d);
}

template <>
__device__ __forceinline__ void wgmma_ss<128, __half>(float (&d)[128], uint64_t desc_a,
                                                      uint64_t desc_b, int32_t scale_d) {
  wgmma_m64n128<__half, 0>(d, desc_a, desc_b, scale_d);
}

}  // namespace flashomni::cuda::gemm
