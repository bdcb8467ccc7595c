// AVX-512 row dots (kernels/cpu/simd/row_dots.h), compiled with -mavx512f -mfma -mf16c and
// run only where the CPU has them. 16 lanes; two accumulator sets for one or two rows so
// that the FMA latency is hidden; stored dtypes widened in registers. No standard-library
// templates here (row_dots.h says why).
#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/cpu/simd/row_dots.h"

namespace omni::kernels {

namespace {

struct F32 {
  static __m512 load(const uint8_t* w, int64_t k) { return _mm512_loadu_ps(reinterpret_cast<const float*>(w) + k); }
  static float at(const uint8_t* w, int64_t k) { return reinterpret_cast<const float*>(w)[k]; }
};
struct Bf16 {
  static __m512 load(const uint8_t* w, int64_t k) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * k));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static float at(const uint8_t* w, int64_t k) {
    const unsigned u = unsigned(w[2 * k]) << 16 | unsigned(w[2 * k + 1]) << 24;
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(int(u))));
  }
};
struct F16 {
  static __m512 load(const uint8_t* w, int64_t k) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * k)));
  }
  static float at(const uint8_t* w, int64_t k) {
    return _cvtsh_ss(static_cast<unsigned short>(w[2 * k] | w[2 * k + 1] << 8));
  }
};

template <class L, int R>
void dots_n(const uint8_t* w, const float* x, int64_t ldx, int64_t K, float* y) {
  constexpr int S = R <= 2 ? 2 : 1;   // accumulator sets
  __m512 acc[S][R];
  for (int s = 0; s < S; ++s)
    for (int r = 0; r < R; ++r) acc[s][r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 * S <= K; k += 16 * S)
    for (int s = 0; s < S; ++s) {
      const __m512 wk = L::load(w, k + 16 * s);
      for (int r = 0; r < R; ++r) acc[s][r] = _mm512_fmadd_ps(wk, _mm512_loadu_ps(x + r * ldx + k + 16 * s), acc[s][r]);
    }
  for (; k + 16 <= K; k += 16) {
    const __m512 wk = L::load(w, k);
    for (int r = 0; r < R; ++r) acc[0][r] = _mm512_fmadd_ps(wk, _mm512_loadu_ps(x + r * ldx + k), acc[0][r]);
  }
  for (int r = 0; r < R; ++r) {
    __m512 a = acc[0][r];
    for (int s = 1; s < S; ++s) a = _mm512_add_ps(a, acc[s][r]);
    float t = _mm512_reduce_add_ps(a);
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

inline __m512 q8_load16(const uint8_t* q) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q))));
}

// Per full block: Σ q·x over its 32 values in two halves, then times the block's scale.
template <int R>
void q8_n(const uint8_t* w, const float* x, int64_t ldx, int64_t K, float* y) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 32 <= K; b += 32, w += 34) {
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(static_cast<unsigned short>(w[0] | w[1] << 8)));
    const __m512 q0 = q8_load16(w + 2), q1 = q8_load16(w + 18);
    for (int r = 0; r < R; ++r) {
      const __m512 s = _mm512_fmadd_ps(q1, _mm512_loadu_ps(x + r * ldx + b + 16),
                                       _mm512_mul_ps(q0, _mm512_loadu_ps(x + r * ldx + b)));
      acc[r] = _mm512_fmadd_ps(s, d, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float t = _mm512_reduce_add_ps(acc[r]);
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

const RowDotKernels kAvx512{"avx512", &dots<F32>, &dots<Bf16>, &dots<F16>, &dots_q8};

}  // namespace

const RowDotKernels* avx512_row_dots() { return &kAvx512; }

}  // namespace omni::kernels
#endif
