// AVX2 row dots (kernels/cpu/simd/row_dots.h), compiled with -mavx2 -mfma -mf16c and run
// only where the CPU has them. 8 lanes; as row_dots_avx512.cpp otherwise. No
// standard-library templates here (row_dots.h says why).
#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/cpu/simd/row_dots.h"

namespace omni::kernels {

namespace {

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

struct F32 {
  static __m256 load(const uint8_t* w, int64_t k) { return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + k); }
  static float at(const uint8_t* w, int64_t k) { return reinterpret_cast<const float*>(w)[k]; }
};
struct Bf16 {
  static __m256 load(const uint8_t* w, int64_t k) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float at(const uint8_t* w, int64_t k) {
    const unsigned u = unsigned(w[2 * k]) << 16 | unsigned(w[2 * k + 1]) << 24;
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(int(u))));
  }
};
struct F16 {
  static __m256 load(const uint8_t* w, int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * k)));
  }
  static float at(const uint8_t* w, int64_t k) {
    return _cvtsh_ss(static_cast<unsigned short>(w[2 * k] | w[2 * k + 1] << 8));
  }
};

template <class L, int R>
void dots_n(const uint8_t* w, const float* x, int64_t ldx, int64_t K, float* y) {
  constexpr int S = R <= 2 ? 2 : 1;
  __m256 acc[S][R];
  for (int s = 0; s < S; ++s)
    for (int r = 0; r < R; ++r) acc[s][r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 * S <= K; k += 8 * S)
    for (int s = 0; s < S; ++s) {
      const __m256 wk = L::load(w, k + 8 * s);
      for (int r = 0; r < R; ++r) acc[s][r] = _mm256_fmadd_ps(wk, _mm256_loadu_ps(x + r * ldx + k + 8 * s), acc[s][r]);
    }
  for (; k + 8 <= K; k += 8) {
    const __m256 wk = L::load(w, k);
    for (int r = 0; r < R; ++r) acc[0][r] = _mm256_fmadd_ps(wk, _mm256_loadu_ps(x + r * ldx + k), acc[0][r]);
  }
  for (int r = 0; r < R; ++r) {
    __m256 a = acc[0][r];
    for (int s = 1; s < S; ++s) a = _mm256_add_ps(a, acc[s][r]);
    float t = hsum(a);
    for (int64_t j = k; j < K; ++j) t += L::at(w, j) * x[r * ldx + j];
    y[r] = t;
  }
}

template <class L>
void dots(const void* w, const float* x, int64_t ldx, int rows, int64_t K, float* y) {
  const auto* p = static_cast<const uint8_t*>(w);
  switch (rows) {
    case 1: dots_n<L, 1>(p, x, ldx, K, y); return;
    case 2: dots_n<L, 2>(p, x, ldx, K, y); return;
    case 3: dots_n<L, 3>(p, x, ldx, K, y); return;
    default: dots_n<L, 4>(p, x, ldx, K, y); return;
  }
}

inline __m256 q8_load8(const uint8_t* q) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q))));
}

template <int R>
void q8_n(const uint8_t* w, const float* x, int64_t ldx, int64_t K, float* y) {
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 32 <= K; b += 32, w += 34) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(static_cast<unsigned short>(w[0] | w[1] << 8)));
    const __m256 q0 = q8_load8(w + 2), q1 = q8_load8(w + 10), q2 = q8_load8(w + 18), q3 = q8_load8(w + 26);
    for (int r = 0; r < R; ++r) {
      const float* xr = x + r * ldx + b;
      const __m256 s01 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xr + 8), _mm256_mul_ps(q0, _mm256_loadu_ps(xr)));
      const __m256 s23 = _mm256_fmadd_ps(q3, _mm256_loadu_ps(xr + 24), _mm256_mul_ps(q2, _mm256_loadu_ps(xr + 16)));
      acc[r] = _mm256_fmadd_ps(_mm256_add_ps(s01, s23), d, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float t = hsum(acc[r]);
    if (b < K) {   // the row's short last block
      const float d = _cvtsh_ss(static_cast<unsigned short>(w[0] | w[1] << 8));
      const auto* q = reinterpret_cast<const int8_t*>(w + 2);
      float s = 0;
      for (int64_t i = 0; b + i < K; ++i) s += float(q[i]) * x[r * ldx + b + i];
      t += s * d;
    }
    y[r] = t;
  }
}

void dots_q8(const void* w, const float* x, int64_t ldx, int rows, int64_t K, float* y) {
  const auto* p = static_cast<const uint8_t*>(w);
  switch (rows) {
    case 1: q8_n<1>(p, x, ldx, K, y); return;
    case 2: q8_n<2>(p, x, ldx, K, y); return;
    case 3: q8_n<3>(p, x, ldx, K, y); return;
    default: q8_n<4>(p, x, ldx, K, y); return;
  }
}

const RowDotKernels kAvx2{"avx2", &dots<F32>, &dots<Bf16>, &dots<F16>, &dots_q8};

}  // namespace

const RowDotKernels* avx2_row_dots() { return &kAvx2; }

}  // namespace omni::kernels
#endif
