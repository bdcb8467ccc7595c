#pragma once
// Error checks for CUDA runtime and cuBLAS calls: throw std::runtime_error with the
// call, the file:line and the library's message.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace omni::kernels::cuda_detail {

[[noreturn]] inline void fail(const char* what, const char* msg, const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error: ") + what + " failed at " + file + ":" + std::to_string(line) +
                           ": " + msg);
}

inline void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess) fail(what, cudaGetErrorString(e), file, line);
}

inline void check(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) fail(what, cublasGetStatusString(s), file, line);
}

}  // namespace omni::kernels::cuda_detail

#define OMNI_CUDA_CHECK(call) ::omni::kernels::cuda_detail::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: configuration errors surface here, not at the next sync.
#define OMNI_CUDA_LAUNCHED() ::omni::kernels::cuda_detail::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
