#include "kernels/cpu/cpu_matmul.h"

#include <cblas.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/cpu_threads.h"
#include "kernels/cpu/simd/row_dots.h"

namespace omni::kernels {

namespace {

// Weight rows a thread takes at a time on the small-batch path: runs of rows stream from
// memory, and enough chunks remain to balance the threads.
constexpr int64_t kRowChunk = 16;
// Weight rows per sgemm call on the large-batch path. Every call packs x again, so calls
// are few and large: each thread takes one share of the rows, and weights that need
// widening to float32 go in tiles of at most 8 MiB widened (a thread's buffer, kept).
int64_t tile_rows(DType dt, int64_t N, int64_t K, int threads) {
  const int64_t share = (N + threads - 1) / threads;
  if (dt == DType::F32) return std::max<int64_t>(1, share);
  return std::max<int64_t>(1, std::min(share, std::max<int64_t>(64, (int64_t(8) << 20) / (4 * K))));
}

void small_batch(const float* x, int64_t M, int64_t K, const Tensor& w, const float* bias, float* y) {
  const int64_t N = w.rows();
  const RowDotsFn dot = row_dot_kernels().for_dtype(w.dtype());
  if (!dot) throw std::invalid_argument("linear: no kernel for weight " + w.describe());
  const auto* wb = static_cast<const uint8_t*>(w.raw());
  const size_t rb = row_bytes(w.dtype(), K);
  const int64_t chunks = (N + kRowChunk - 1) / kRowChunk;
  const int threads = cpu_threads();
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && N * K * M >= (1 << 16))
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(N, (c + 1) * kRowChunk);
    // x rows outside, weight rows inside: a group of x rows stays in L1 while the chunk's
    // weight rows (from memory once, then from L2) pass it.
    for (int64_t m0 = 0; m0 < M; m0 += kMaxDotRows)
      for (int64_t n = c * kRowChunk; n < end; ++n) {
        const int rows = int(std::min<int64_t>(kMaxDotRows, M - m0));
        float out[kMaxDotRows];
        dot(wb + size_t(n) * rb, x + m0 * K, K, rows, K, out);
        const float b = bias ? bias[n] : 0.0f;
        for (int r = 0; r < rows; ++r) y[(m0 + r) * N + n] = out[r] + b;
      }
  }
}

void large_batch(const float* x, int64_t M, int64_t K, const Tensor& w, const float* bias, float* y) {
  const int64_t N = w.rows();
  const DType dt = w.dtype();
  const auto* wb = static_cast<const uint8_t*>(w.raw());
  const size_t rb = row_bytes(dt, K);
  const int threads = cpu_threads();
  const int64_t tile = tile_rows(dt, N, K, threads), tiles = (N + tile - 1) / tile;
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1 && tiles > 1)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t n0 = t * tile, nb = std::min(tile, N - n0);
    const float* tile = reinterpret_cast<const float*>(wb + size_t(n0) * rb);
    if (dt != DType::F32) {
      // Kept per thread: OpenMP's threads live on, so the buffer is allocated once.
      thread_local std::vector<float> widened;
      widened.resize(size_t(nb * K));
      convert_rows_to_f32(wb + size_t(n0) * rb, dt, nb, K, widened.data());
      tile = widened.data();
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(nb), int(K), 1.0f, x, int(K), tile, int(K),
                0.0f, y + n0, int(N));
    if (bias)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = n0; n < n0 + nb; ++n) y[m * N + n] += bias[n];
  }
}

}  // namespace

void cpu_matmul_path(const float* x, int64_t M, int64_t K, const Tensor& w, const float* bias, float* y, bool small) {
  if (M == 0 || w.rows() == 0) return;
  if (small) small_batch(x, M, K, w, bias, y);
  else large_batch(x, M, K, w, bias, y);
}

void cpu_matmul(const float* x, int64_t M, int64_t K, const Tensor& w, const float* bias, float* y) {
  cpu_matmul_path(x, M, K, w, bias, y, M <= small_batch_rows(w.dtype()));
}

}  // namespace omni::kernels
