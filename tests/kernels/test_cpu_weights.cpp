// Weight matrices kept in bf16, f16 or Q8_0 on a cpu device (kernels/cpu_weights.h):
// every row-dot implementation this CPU runs, for every weight dtype, against a double
// sum over the same stored weights; Q8_0 against llama.cpp's rule written out here; the
// linear layer's two paths against each other; tensors used where they lie in memory.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/simd/row_dots.h"
#include "kernels/cpu_weights.h"
#include "kernels/device.h"
#include "kernels/tensor.h"
#include "util/q8_0_reference.h"

using namespace omni::kernels;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// The weights a stored row holds, widened exactly (what every kernel must compute with).
std::vector<double> stored_values(const std::vector<uint8_t>& row, DType t, int64_t K) {
  std::vector<float> f(static_cast<size_t>(K));
  convert_rows_to_f32(row.data(), t, 1, K, f.data());
  return std::vector<double>(f.begin(), f.end());
}

std::vector<uint8_t> stored_row(const float* x, DType t, int64_t K) {
  std::vector<uint8_t> row(row_bytes(t, K));
  convert_rows_from_f32(x, t, 1, K, row.data());
  return row;
}

}  // namespace

TEST_CASE("Q8_0 blocks are llama.cpp's: f16 scale max|x|/127, values rounded, a short last block", "[kernels][cpu_weights]") {
  for (int64_t K : {1, 31, 32, 33, 64, 95, 896}) {
    std::vector<float> x = randn(size_t(K), uint32_t(K));
    if (K >= 64) std::fill(x.begin() + 32, x.begin() + 64, 0.0f);   // an all-zero block: d = 0, q = 0
    const std::vector<uint8_t> got = stored_row(x.data(), DType::Q8_0, K), want = omni::test::q8_0_reference(x.data(), K);
    INFO("K = " << K);
    REQUIRE(got.size() == row_bytes(DType::Q8_0, K));
    CHECK(got == want);
    // Round trip: each value within half a step of its block, plus what storing the step as
    // f16 moves the largest code (127) by: values are rounded with the f32 step.
    const std::vector<double> back = stored_values(got, DType::Q8_0, K);
    for (int64_t b = 0; b < K; b += 32) {
      float amax = 0;
      for (int64_t j = b; j < std::min<int64_t>(K, b + 32); ++j) amax = std::max(amax, std::fabs(x[size_t(j)]));
      const double step = amax / 127.0f, stored = f16_to_f32(f32_to_f16(amax / 127.0f));
      const double bound = 0.5 * step + 127 * std::fabs(stored - step) + 1e-7 * step;
      for (int64_t j = b; j < std::min<int64_t>(K, b + 32); ++j) CHECK(std::fabs(back[size_t(j)] - x[size_t(j)]) <= bound);
    }
  }
  CHECK(row_bytes(DType::Q8_0, 896) == 28 * 34);
  CHECK(row_bytes(DType::Q8_0, 33) == 34 + 3);
}

TEST_CASE("every row-dot kernel this CPU runs equals a double sum over the stored weights", "[kernels][cpu_weights]") {
  int count = 0;
  const RowDotKernels* const* all = runnable_row_dot_kernels(&count);
  REQUIRE(count >= 1);
  CHECK(std::string(all[count - 1]->isa) == "portable");
  CHECK(&row_dot_kernels() == all[0]);
  for (int i = 0; i < count; ++i) {
    const RowDotKernels& k = *all[i];
    for (DType t : {DType::F32, DType::BF16, DType::F16, DType::Q8_0}) {
      RowDotsFn fn = k.for_dtype(t);
      REQUIRE(fn != nullptr);
      for (int64_t K : {1, 7, 31, 32, 33, 63, 64, 65, 257, 896, 4864}) {
        const std::vector<float> w = randn(size_t(K), uint32_t(K) * 7 + 1);
        const std::vector<uint8_t> row = stored_row(w.data(), t, K);
        const std::vector<double> wv = stored_values(row, t, K);
        const int64_t ldx = K + 3;   // rows of x are not packed
        const std::vector<float> x = randn(size_t(kMaxDotRows * ldx), uint32_t(K) + 99);
        for (int rows = 1; rows <= kMaxDotRows; ++rows) {
          float y[kMaxDotRows] = {};
          fn(row.data(), x.data(), ldx, rows, K, y);
          for (int r = 0; r < rows; ++r) {
            double want = 0, mag = 0;
            for (int64_t j = 0; j < K; ++j) {
              want += wv[size_t(j)] * x[size_t(r * ldx + j)];
              mag += std::fabs(wv[size_t(j)] * x[size_t(r * ldx + j)]);
            }
            INFO(k.isa << " " << dtype_name(t) << " K=" << K << " rows=" << rows << " r=" << r);
            // float32 accumulation in a different order: a few ulps of the magnitude summed.
            CHECK(std::fabs(double(y[r]) - want) <= 4e-6 * mag + 1e-30);
          }
        }
      }
    }
  }
}

TEST_CASE("the linear layer's row-dot and tiled sgemm paths agree for every weight dtype", "[kernels][cpu_weights]") {
  auto dev = make_device({DeviceId::Kind::CPU, 0});
  const int64_t N = 77, K = 130;
  const std::vector<float> wf = randn(size_t(N * K), 5, 0.05f), bias = randn(size_t(N), 6);
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::Q8_0}) {
    const Tensor w = Tensor::from_host(dev, t, {N, K}, wf.data());
    // The stored weights, widened: the reference both paths must compute with.
    const std::vector<float> wv = w.to_host();
    for (int64_t M : {1, 3, 4, 5, 16, 17, 70}) {
      const std::vector<float> x = randn(size_t(M * K), uint32_t(M));
      std::vector<float> small(size_t(M * N)), tiled(size_t(M * N));
      cpu_matmul_path(x.data(), M, K, w, bias.data(), small.data(), true);
      cpu_matmul_path(x.data(), M, K, w, bias.data(), tiled.data(), false);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double want = bias[size_t(n)], mag = std::fabs(bias[size_t(n)]);
          for (int64_t k = 0; k < K; ++k) {
            want += double(wv[size_t(n * K + k)]) * x[size_t(m * K + k)];
            mag += std::fabs(double(wv[size_t(n * K + k)]) * x[size_t(m * K + k)]);
          }
          INFO(dtype_name(t) << " M=" << M << " m=" << m << " n=" << n);
          CHECK(std::fabs(small[size_t(m * N + n)] - want) <= 4e-6 * mag);
          CHECK(std::fabs(tiled[size_t(m * N + n)] - want) <= 4e-6 * mag);
        }
    }
  }
}

TEST_CASE("cpu_weights picks the dtype a cpu device keeps each released dtype in", "[kernels][cpu_weights]") {
  using W = CpuWeights;
  CHECK(cpu_weight_dtype(W::AsReleased, DType::BF16) == DType::BF16);
  CHECK(cpu_weight_dtype(W::AsReleased, DType::F16) == DType::F16);
  CHECK(cpu_weight_dtype(W::AsReleased, DType::F32) == DType::F32);
  CHECK(cpu_weight_dtype(W::F32, DType::BF16) == DType::F32);
  CHECK(cpu_weight_dtype(W::BF16, DType::F32) == DType::BF16);
  CHECK(cpu_weight_dtype(W::BF16, DType::F16) == DType::F16);
  CHECK(cpu_weight_dtype(W::Int8, DType::BF16) == DType::Q8_0);
  for (W w : {W::AsReleased, W::F32, W::BF16, W::Int8}) CHECK(parse_cpu_weights(to_string(w)) == w);
  CHECK_THROWS_WITH(parse_cpu_weights("q4"), Catch::Contains("'q4'") && Catch::Contains("auto, f32, bf16, int8"));
  CHECK(make_device({DeviceId::Kind::CPU, 0}, 0, W::Int8)->weight_dtype(DType::BF16) == DType::Q8_0);
}

TEST_CASE("a tensor adopted from host memory is used where it lies and charged to the device", "[kernels][cpu_weights]") {
  auto dev = make_device({DeviceId::Kind::CPU, 0}, 1 << 20, CpuWeights::BF16);
  const size_t before = dev->free_memory();
  auto host = std::make_shared<std::vector<uint16_t>>(64 * 64);
  for (size_t i = 0; i < host->size(); ++i) (*host)[i] = f32_to_bf16(float(i % 61) - 30.0f);
  std::weak_ptr<std::vector<uint16_t>> watch = host;
  {
    Tensor t = Tensor::adopt_host(dev, DType::BF16, {64, 64}, host->data(), host);
    REQUIRE(t.defined());
    CHECK(t.raw() == static_cast<const void*>(host->data()));   // no copy
    CHECK(dev->free_memory() == before - 64 * 64 * 2);
    const std::vector<float> back = t.to_host();
    CHECK(back[61] == 0.0f - 30.0f);
    CHECK(back[62] == 1.0f - 30.0f);
    host.reset();
    CHECK_FALSE(watch.expired());   // the tensor keeps its memory valid
    // Misaligned for its dtype: not adopted, the caller copies.
    CHECK_FALSE(Tensor::adopt_host(dev, DType::F32, {4}, reinterpret_cast<const uint8_t*>(t.raw()) + 2, nullptr).defined());
  }
  CHECK(watch.expired());
  CHECK(dev->free_memory() == before);
  // More than the budget: not adopted.
  std::vector<uint16_t> big((1 << 20) / 2 + 64);
  CHECK_FALSE(Tensor::adopt_host(dev, DType::BF16, {int64_t(big.size())}, big.data(), nullptr).defined());
  CHECK(dev->free_memory() == before);
}
