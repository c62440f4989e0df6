// FlashOmni CUDA layer (common): TMA tensor-map encoding through the driver entry point (the
// library links only the static runtime, so cuTensorMapEncodeTiled is looked up once at run time).
#include "cuda/common/tensor_map.h"

#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <mutex>

#include "cuda/runtime.h"

namespace flashomni::cuda {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  static std::once_flag once;
  static cudaError_t status = cudaSuccess;
  std::call_once(once, [] {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult query = cudaDriverEntryPointSuccess;
    status = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000,
                                              cudaEnableDefault, &query);
    if (status == cudaSuccess && query != cudaDriverEntryPointSuccess) {
      status = cudaErrorSymbolNotFound;
    }
    fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ptr);
  });
  check_cuda(status, "cudaGetDriverEntryPointByVersion(cuTensorMapEncodeTiled)");
  return fn;
}

}  // namespace

CUtensorMap make_tensor_map(const void* base, int32_t elem_bytes, int64_t batch, int64_t rows,
                            int64_t cols, int64_t row_stride, int64_t batch_stride,
                            int32_t box_rows, int32_t box_cols) {
  CUtensorMap map{};
  const cuuint32_t rank = batch > 1 ? 3 : 2;
  // Dimension 0 is the contiguous one; strides (bytes) are given for dimensions 1.. only.
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows),
                              static_cast<cuuint64_t>(batch)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(row_stride) * elem_bytes,
                                 static_cast<cuuint64_t>(batch_stride) * elem_bytes};
  const cuuint32_t box[3] = {static_cast<cuuint32_t>(box_cols), static_cast<cuuint32_t>(box_rows),
                             1};
  const cuuint32_t elem_strides[3] = {1, 1, 1};
  // The data type only sets the element size for a plain copy: bf16 and fp16 share the encoding.
  const CUresult res = encode_fn()(
      &map, elem_bytes == 4 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
      rank, const_cast<void*>(base), dims, strides, box, elem_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (res != CUDA_SUCCESS) {
    throw Error(Status::kCudaError,
                detail::concat("cuTensorMapEncodeTiled failed (CUresult ", static_cast<int>(res),
                               ") for a [", batch, ", ", rows, ", ", cols, "] tensor, row stride ",
                               row_stride, ", box ", box_rows, "x", box_cols));
  }
  return map;
}

}  // namespace flashomni::cuda
