// CudaOps: bf16 storage, fp32 accumulation. Kept deliberately lean for compile time:
// no templates over dtypes (element loads/stores switch on a run-time dtype code, uniform
// across a launch), no CUB/Thrust; one kernel per op family.
#include "kernels/cuda/cuda_ops.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"

namespace omni::kernels {

namespace {

// ---- dtype codes and element access -------------------------------------------------
enum : int { kF32 = 0, kBF16 = 1, kI32 = 2 };

int code_of(const Tensor& t, const char* op) {
  switch (t.dtype()) {
    case DType::F32: return kF32;
    case DType::BF16: return kBF16;
    case DType::I32: return kI32;
    default: break;
  }
  throw std::invalid_argument(std::string(op) + ": unsupported dtype on CUDA: " + t.describe());
}

int float_code(const Tensor& t, const char* op, const char* what) {
  const int c = code_of(t, op);
  if (c == kI32) throw std::invalid_argument(std::string(op) + ": " + what + " must be F32 or BF16, got " + t.describe());
  return c;
}

__device__ __forceinline__ float bf16_bits_to_f32(unsigned short h) { return __uint_as_float(unsigned(h) << 16); }

// Round-to-nearest-even with quiet NaN: identical to the host's f32_to_bf16.
__device__ __forceinline__ unsigned short f32_to_bf16_bits(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<unsigned short>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<unsigned short>(u >> 16);
}

__device__ __forceinline__ float ld(const void* p, int64_t i, int dt) {
  if (dt == kBF16) return bf16_bits_to_f32(static_cast<const unsigned short*>(p)[i]);
  if (dt == kI32) return static_cast<float>(static_cast<const int*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

__device__ __forceinline__ void st(void* p, int64_t i, int dt, float v) {
  if (dt == kBF16) static_cast<unsigned short*>(p)[i] = f32_to_bf16_bits(v);
  else static_cast<float*>(p)[i] = v;
}

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();   // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = lane < nw ? red[lane] : 0.0f;
  return warp_sum(t);
}

// ---- element-wise ---------------------------------------------------------------------
enum : int { kAdd = 0, kSiluMul = 1, kGelu = 2, kConvert = 3, kBias = 4 };

__global__ void k_eltwise(int op, const void* a, int dta, const void* b, int dtb, void* y, int dty, int64_t n,
                          int64_t bias_n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float x = ld(a, i, dta);
    float r;
    switch (op) {
      case kAdd: r = x + ld(b, i, dtb); break;
      case kSiluMul: r = x / (1.0f + expf(-x)) * ld(b, i, dtb); break;
      case kGelu: r = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x))); break;
      case kBias: r = x + ld(b, i % bias_n, dtb); break;
      default: r = x; break;
    }
    st(y, i, dty, r);
  }
}

// ---- norms: one block per row ------------------------------------------------------------
__global__ void k_rms_norm(const void* x, int dtx, const void* w, int dtw, void* y, int dty, int64_t W, float eps) {
  __shared__ float red[32];
  const int64_t base = int64_t(blockIdx.x) * W;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < W; i += blockDim.x) {
    const float v = ld(x, base + i, dtx);
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss, red) / float(W) + eps);
  // Each thread rewrites only what it read: y may alias x.
  for (int64_t i = threadIdx.x; i < W; i += blockDim.x) st(y, base + i, dty, ld(x, base + i, dtx) * inv * ld(w, i, dtw));
}

__global__ void k_layer_norm(const void* x, int dtx, const void* w, int dtw, const void* b, int dtb, void* y, int dty,
                             int64_t W, float eps) {
  __shared__ float red[32];
  const int64_t base = int64_t(blockIdx.x) * W;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < W; i += blockDim.x) s += ld(x, base + i, dtx);
  const float mean = block_sum(s, red) / float(W);
  float v2 = 0.0f;
  for (int64_t i = threadIdx.x; i < W; i += blockDim.x) {
    const float d = ld(x, base + i, dtx) - mean;
    v2 += d * d;
  }
  const float inv = rsqrtf(block_sum(v2, red) / float(W) + eps);
  for (int64_t i = threadIdx.x; i < W; i += blockDim.x)
    st(y, base + i, dty, (ld(x, base + i, dtx) - mean) * inv * ld(w, i, dtw) + ld(b, i, dtb));
}

// ---- rotary embedding, rotate-half, in place: one thread per (t, head, i < half) ----------
__global__ void k_rope(void* x, int dtx, const int* pos, const void* freq, int dtf, int64_t T, int n_heads, int half) {
  const int64_t n = T * n_heads * half;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int i = int(e % half);
    const int64_t th = e / half;   // t * n_heads + h
    const int64_t t = th / n_heads;
    // The angle in double, as the reference does: positions reach 10^4..10^5 radians.
    double s, c;
    sincos(double(pos[t]) * double(ld(freq, i, dtf)), &s, &c);
    const int64_t at = th * 2 * half + i;
    const float x1 = ld(x, at, dtx), x2 = ld(x, at + half, dtx);
    st(x, at, dtx, float(x1 * c - x2 * s));
    st(x, at + half, dtx, float(x2 * c + x1 * s));
  }
}

__global__ void k_embedding(const void* table, int dtt, const int* ids, void* y, int dty, int64_t W) {
  const int64_t t = blockIdx.x;
  const int64_t row = ids[t];
  for (int64_t i = threadIdx.x; i < W; i += blockDim.x) st(y, t * W + i, dty, ld(table, row * W + i, dtt));
}

__global__ void k_write_rows(const void* src, int dts, const int* rows, void* dst, int dtd, int64_t W) {
  const int64_t t = blockIdx.x;
  const int64_t row = rows[t];
  for (int64_t i = threadIdx.x; i < W; i += blockDim.x) st(dst, row * W + i, dtd, ld(src, t * W + i, dts));
}

__global__ void k_fill_uniform(void* x, int dt, int64_t n, unsigned long long seed, float scale) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    unsigned long long z = seed + 0x9e3779b97f4a7c15ull * (unsigned long long)(i + 1);   // splitmix64
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const float u = float(z >> 40) * (1.0f / 16777216.0f);   // [0, 1)
    st(x, i, dt, (2.0f * u - 1.0f) * scale);
  }
}

// ---- attention ------------------------------------------------------------------------------
// Grid: x = blocks of kWarps work items of one kv head of one sequence (the sequences'
// blocks one after another), y = kv head, z = key split. Keys are found through the
// sequence's block table (ops.h AttentionLayout), so one launch serves every sequence of
// a step, prefill chunks and decode rows alike.
// A work item is one (query row i, query head h) pair; the kWarps items of a block share
// the kv head, so each K/V tile, converted to fp32 in shared memory, serves all of them.
// A warp owns an item: lane j scores key (tile start + j) against q (in shared memory),
// the warp keeps the running max m and sum l (online softmax), and lane j accumulates
// output dims j, j+32, ... With one split the result is normalised and stored; with
// several, (acc, m, l) go to a workspace that k_attention_merge combines.
constexpr int kWarps = 8;
constexpr int kTile = 32;          // keys per tile (one per lane)
constexpr int kMaxHeadDim = 256;   // 8 accumulators per lane
constexpr int kAcc = kMaxHeadDim / 32;

struct AttnParams {
  const void* q; const void* k; const void* v; void* out;
  int dtq, dtk, dtv, dto;
  int64_t Tq;           // query rows of all sequences
  const int* seqs;      // [n_seqs][5]: q_begin, q_rows, kv_len, causal_offset, table_begin
  const int* table;     // block ids
  int n_seqs, block_rows;
  int n_heads, n_kv, group, D;
  float scale;
  int64_t split_len;    // keys per split (a multiple of kTile)
  float* part_o;        // [splits][Tq * n_heads][D] when gridDim.z > 1
  float* part_ml;       // [splits][Tq * n_heads][2]
};

size_t attention_smem(int D) { return size_t(kTile * (D + 1) + kTile * D + kWarps * D) * sizeof(float); }

__global__ void __launch_bounds__(kWarps * 32) k_attention(AttnParams p) {
  extern __shared__ float smem[];
  const int D = p.D;
  float* Ks = smem;                         // [kTile][D + 1] (padded: lanes read rows)
  float* Vs = Ks + kTile * (D + 1);         // [kTile][D]
  float* Qs = Vs + kTile * D;               // [kWarps][D], pre-scaled
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kvh = blockIdx.y, split = blockIdx.z;
  // This block's sequence: a short scan (a step has at most a few hundred sequences).
  int64_t bx = blockIdx.x;
  int seq = 0;
  for (; seq < p.n_seqs; ++seq) {
    const int64_t nb = (int64_t(p.seqs[seq * 5 + 1]) * p.group + kWarps - 1) / kWarps;
    if (bx < nb) break;
    bx -= nb;
  }
  if (seq == p.n_seqs) return;   // uniform over the block
  const int64_t q_begin = p.seqs[seq * 5], q_rows = p.seqs[seq * 5 + 1], Tk = p.seqs[seq * 5 + 2];
  const int64_t causal = p.seqs[seq * 5 + 3];
  const int* table = p.table + p.seqs[seq * 5 + 4];
  const int64_t item = bx * kWarps + warp;
  const int64_t qi_local = item / p.group;
  const int h = kvh * p.group + int(item % p.group);
  const bool valid = qi_local < q_rows;
  const int64_t qi = q_begin + qi_local;
  const int64_t qw = int64_t(p.n_heads) * D, kw = int64_t(p.n_kv) * D;

  if (valid)
    for (int d = lane; d < D; d += 32) Qs[warp * D + d] = ld(p.q, qi * qw + int64_t(h) * D + d, p.dtq) * p.scale;

  // Keys this block looks at: its split, cut at the last row's causal limit.
  const int64_t last_item = (bx + 1) * kWarps - 1;
  const int64_t last_row = min64(q_rows - 1, last_item / p.group);
  int64_t key_end = min64(Tk, (int64_t(split) + 1) * p.split_len);
  if (causal >= 0) key_end = min64(key_end, causal + last_row + 1);
  const int64_t key_begin = int64_t(split) * p.split_len;
  const int64_t visible = !valid ? 0 : (causal < 0 ? Tk : min64(Tk, causal + qi_local + 1));
  const int64_t my_end = min64(key_end, visible);

  float acc[kAcc];
#pragma unroll
  for (int j = 0; j < kAcc; ++j) acc[j] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int64_t t0 = key_begin; t0 < key_end; t0 += kTile) {
    __syncthreads();   // previous tile consumed (and Qs written, on the first pass)
    for (int e = threadIdx.x; e < kTile * D; e += blockDim.x) {
      const int r = e / D, c = e % D;
      const int64_t key = t0 + r;
      float kv = 0.0f, vv = 0.0f;
      if (key < key_end) {
        const int64_t row = int64_t(table[key / p.block_rows]) * p.block_rows + key % p.block_rows;
        const int64_t at = row * kw + int64_t(kvh) * D + c;
        kv = ld(p.k, at, p.dtk);
        vv = ld(p.v, at, p.dtv);
      }
      Ks[r * (D + 1) + c] = kv;
      Vs[r * D + c] = vv;
    }
    __syncthreads();
    if (!valid || t0 >= my_end) continue;   // warp-uniform; no barrier until the loop's top

    const int64_t key = t0 + lane;
    float s = -INFINITY;
    if (key < my_end) {
      const float* kr = Ks + lane * (D + 1);
      const float* qr = Qs + warp * D;
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += qr[d] * kr[d];
      s = dot;
    }
    const float m_new = fmaxf(m, warp_max(s));   // finite: key t0 < my_end is visible
    const float pr = key < my_end ? expf(s - m_new) : 0.0f;
    const float corr = expf(m - m_new);          // exp(-inf) = 0 on the first tile
    l = l * corr + warp_sum(pr);
    m = m_new;
#pragma unroll
    for (int j = 0; j < kAcc; ++j) acc[j] *= corr;
    const int n_keys = int(min64(kTile, my_end - t0));
    for (int kk = 0; kk < n_keys; ++kk) {
      const float pk = __shfl_sync(0xffffffffu, pr, kk);
      const float* vr = Vs + kk * D;
#pragma unroll
      for (int j = 0; j < kAcc; ++j) {
        const int d = lane + 32 * j;
        if (d < D) acc[j] += pk * vr[d];
      }
    }
  }
  if (!valid) return;
  const int64_t r = qi * p.n_heads + h;
  if (gridDim.z == 1) {
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int j = 0; j < kAcc; ++j) {
      const int d = lane + 32 * j;
      if (d < D) st(p.out, qi * qw + int64_t(h) * D + d, p.dto, acc[j] * inv);
    }
    return;
  }
  const int64_t R = p.Tq * p.n_heads;
  float* po = p.part_o + (int64_t(split) * R + r) * D;
#pragma unroll
  for (int j = 0; j < kAcc; ++j) {
    const int d = lane + 32 * j;
    if (d < D) po[d] = acc[j];
  }
  if (lane == 0) {
    p.part_ml[(int64_t(split) * R + r) * 2] = m;
    p.part_ml[(int64_t(split) * R + r) * 2 + 1] = l;
  }
}

// One block per (query row, head): out = Σ_s acc_s e^(m_s − M) / Σ_s l_s e^(m_s − M).
__global__ void k_attention_merge(const float* part_o, const float* part_ml, int splits, int64_t R, int n_heads, int D,
                                  void* out, int dto) {
  const int64_t r = blockIdx.x;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, part_ml[(s * R + r) * 2]);
  float L = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float ms = part_ml[(s * R + r) * 2];
    if (ms != -INFINITY) L += part_ml[(s * R + r) * 2 + 1] * expf(ms - M);
  }
  const float inv = L > 0.0f ? 1.0f / L : 0.0f;
  const int64_t qi = r / n_heads, h = r % n_heads;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float ms = part_ml[(s * R + r) * 2];
      if (ms != -INFINITY) o += part_o[(s * R + r) * D + d] * expf(ms - M);
    }
    st(out, (qi * n_heads + h) * D + d, dto, o * inv);
  }
}

// ---- host helpers ---------------------------------------------------------------------------
void same_numel(const Tensor& a, const Tensor& b, const char* op) {
  if (a.numel() != b.numel()) throw std::invalid_argument(std::string(op) + ": " + a.describe() + " vs " + b.describe());
}

int elt_blocks(int64_t n, int sms) {
  return int(std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, int64_t(sms) * 16)));
}

int norm_threads(int64_t W) { return int(std::min<int64_t>(1024, std::max<int64_t>(32, (std::min<int64_t>(W, 512) + 31) / 32 * 32))); }

}  // namespace

#define OMNI_STREAM static_cast<cudaStream_t>(dev_.stream())

CudaOps::CudaOps(CudaDevice& dev) : dev_(dev) {
  dev_.make_current();
  cublasHandle_t h = nullptr;
  OMNI_CUDA_CHECK(cublasCreate(&h));
  cublas_ = h;
  OMNI_CUDA_CHECK(cublasSetStream(h, OMNI_STREAM));
  OMNI_CUDA_CHECK(cudaFuncSetAttribute(k_attention, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(attention_smem(kMaxHeadDim))));
}

CudaOps::~CudaOps() {
  if (cublas_) cublasDestroy(static_cast<cublasHandle_t>(cublas_));
}

void CudaOps::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const int64_t N = w.rows(), K = w.cols(), M = x.numel() / std::max<int64_t>(K, 1);
  if (x.numel() != M * K || y.numel() != M * N)
    throw std::invalid_argument("linear: shapes " + x.describe() + " x " + w.describe() + " -> " + y.describe());
  if (x.dtype() != w.dtype() || y.dtype() != w.dtype() || (w.dtype() != DType::BF16 && w.dtype() != DType::F32))
    throw std::invalid_argument("linear on CUDA wants x, w, y all BF16 or all F32: " + x.describe() + ", " +
                                w.describe() + ", " + y.describe());
  if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) throw std::invalid_argument("linear: dimension over 2^31");
  if (bias && bias->numel() != N) throw std::invalid_argument("linear: bias " + bias->describe());
  if (M == 0) return;
  dev_.make_current();
  const cudaDataType_t t = w.dtype() == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
  const float alpha = 1.0f, beta = 0.0f;
  // Row-major y[M,N] = x[M,K]·w[N,K]ᵀ is column-major yᵀ[N,M] = (w as K×N)ᵀ · (x as K×M).
  OMNI_CUDA_CHECK(cublasGemmEx(static_cast<cublasHandle_t>(cublas_), CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K),
                               &alpha, w.raw(), t, int(K), x.raw(), t, int(K), &beta, y.raw(), t, int(N),
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  if (bias) {
    const int dt = code_of(y, "linear");
    k_eltwise<<<elt_blocks(M * N, dev_.sm_count()), 256, 0, OMNI_STREAM>>>(
        kBias, y.raw(), dt, bias->raw(), float_code(*bias, "linear", "bias"), y.raw(), dt, M * N, N);
    OMNI_CUDA_LAUNCHED();
  }
}

void CudaOps::rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  same_numel(x, y, "rms_norm");
  const int64_t W = w.numel();
  if (W == 0 || x.numel() % W != 0) throw std::invalid_argument("rms_norm: width of " + w.describe());
  const int64_t R = x.numel() / W;
  if (R == 0) return;
  dev_.make_current();
  k_rms_norm<<<unsigned(R), norm_threads(W), 0, OMNI_STREAM>>>(x.raw(), float_code(x, "rms_norm", "input"), w.raw(),
                                                               float_code(w, "rms_norm", "weight"), y.raw(),
                                                               float_code(y, "rms_norm", "output"), W, eps);
  OMNI_CUDA_LAUNCHED();
}

void CudaOps::layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) {
  same_numel(x, y, "layer_norm");
  const int64_t W = w.numel();
  if (W == 0 || x.numel() % W != 0 || b.numel() != W) throw std::invalid_argument("layer_norm: width of " + w.describe());
  const int64_t R = x.numel() / W;
  if (R == 0) return;
  dev_.make_current();
  k_layer_norm<<<unsigned(R), norm_threads(W), 0, OMNI_STREAM>>>(
      x.raw(), float_code(x, "layer_norm", "input"), w.raw(), float_code(w, "layer_norm", "weight"), b.raw(),
      float_code(b, "layer_norm", "bias"), y.raw(), float_code(y, "layer_norm", "output"), W, eps);
  OMNI_CUDA_LAUNCHED();
}

void CudaOps::rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq, int n_heads, int head_dim) {
  const int64_t T = positions.numel();
  const int half = head_dim / 2;
  if (positions.dtype() != DType::I32 || x.numel() != T * n_heads * head_dim || head_dim % 2 || inv_freq.numel() != half)
    throw std::invalid_argument("rope: " + x.describe() + " with positions " + positions.describe() + " and inv_freq " +
                                inv_freq.describe());
  const int64_t n = T * n_heads * half;
  if (n == 0) return;
  dev_.make_current();
  k_rope<<<elt_blocks(n, dev_.sm_count()), 256, 0, OMNI_STREAM>>>(x.raw(), float_code(x, "rope", "input"),
                                                                  positions.data<int>(), inv_freq.raw(),
                                                                  float_code(inv_freq, "rope", "inv_freq"), T, n_heads,
                                                                  half);
  OMNI_CUDA_LAUNCHED();
}

int CudaOps::attention_splits(int64_t Tq, int64_t Tk, const AttentionArgs& a) const {
  if (forced_splits_ > 0) return int(std::min<int64_t>(forced_splits_, std::max<int64_t>(1, (Tk + kTile - 1) / kTile)));
  const int group = a.n_heads / a.n_kv_heads;
  const int64_t base = (Tq * group + kWarps - 1) / kWarps * a.n_kv_heads;   // blocks without splitting
  const int64_t target = 2 * int64_t(std::max(dev_.sm_count(), 1));
  if (base >= target) return 1;
  const int64_t by_keys = std::max<int64_t>(1, Tk / (2 * kTile));           // at least 64 keys a split
  return int(std::max<int64_t>(1, std::min<int64_t>({(target + base - 1) / base, by_keys, 1024})));
}

void CudaOps::attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionArgs& a,
                        const AttentionLayout& lay) {
  if (a.n_heads <= 0 || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0 || a.head_dim <= 0)
    throw std::invalid_argument("attention: " + std::to_string(a.n_heads) + " heads over " +
                                std::to_string(a.n_kv_heads) + " kv heads");
  if (a.head_dim > kMaxHeadDim)
    throw std::invalid_argument("attention on CUDA: head_dim " + std::to_string(a.head_dim) + " over " +
                                std::to_string(kMaxHeadDim));
  const int64_t qw = int64_t(a.n_heads) * a.head_dim, kw = int64_t(a.n_kv_heads) * a.head_dim;
  const int64_t Tq = q.numel() / qw, Tk = k.numel() / kw;
  if (q.numel() != Tq * qw || k.numel() != Tk * kw || v.numel() != Tk * kw || out.numel() != Tq * qw)
    throw std::invalid_argument("attention: q " + q.describe() + ", k " + k.describe() + ", v " + v.describe() +
                                ", out " + out.describe());
  lay.check(Tq, Tk);
  if (Tq == 0 || lay.seqs.empty()) return;
  dev_.make_current();
  // The layout on the device: the caller's copy (made once per step) or one for this call.
  Tensor meta = lay.on_device;
  if (!meta.defined() || &meta.device() != &q.device()) {
    const std::vector<int32_t> packed = lay.packed();
    meta = Tensor::empty(q.device_ptr(), DType::I32, {int64_t(packed.size())});
    OMNI_CUDA_CHECK(cudaMemcpyAsync(meta.raw(), packed.data(), packed.size() * sizeof(int32_t),
                                    cudaMemcpyHostToDevice, OMNI_STREAM));
    OMNI_CUDA_CHECK(cudaStreamSynchronize(OMNI_STREAM));   // `packed` is pageable and goes out of scope
  }
  AttnParams p{};
  p.q = q.raw(); p.k = k.raw(); p.v = v.raw(); p.out = out.raw();
  p.dtq = float_code(q, "attention", "q");
  p.dtk = float_code(k, "attention", "k");
  p.dtv = float_code(v, "attention", "v");
  p.dto = float_code(out, "attention", "out");
  p.Tq = Tq;
  p.seqs = meta.data<int>();
  p.table = p.seqs + lay.seqs.size() * 5;
  p.n_seqs = int(lay.seqs.size());
  p.block_rows = lay.block_rows;
  p.n_heads = a.n_heads; p.n_kv = a.n_kv_heads; p.group = a.n_heads / a.n_kv_heads; p.D = a.head_dim;
  p.scale = a.scale;
  int64_t max_kv = 0, bx = 0;
  for (const auto& s : lay.seqs) {
    max_kv = std::max<int64_t>(max_kv, s.kv_len);
    bx += (int64_t(s.q_rows) * p.group + kWarps - 1) / kWarps;
  }
  if (bx > INT32_MAX) throw std::invalid_argument("attention: too many query rows");
  if (bx == 0) return;
  int splits = attention_splits(Tq, max_kv, a);
  p.split_len = std::max<int64_t>(kTile, ((max_kv + splits - 1) / splits + kTile - 1) / kTile * kTile);
  splits = int(std::max<int64_t>(1, (max_kv + p.split_len - 1) / p.split_len));
  const int64_t R = Tq * a.n_heads;
  void* ws = nullptr;
  size_t ws_bytes = 0;
  if (splits > 1) {
    ws_bytes = size_t(splits) * size_t(R) * size_t(a.head_dim + 2) * sizeof(float);
    ws = dev_.alloc(ws_bytes);
    p.part_o = static_cast<float*>(ws);
    p.part_ml = p.part_o + int64_t(splits) * R * a.head_dim;
  }
  const dim3 grid(unsigned(bx), unsigned(a.n_kv_heads), unsigned(splits));
  k_attention<<<grid, kWarps * 32, attention_smem(a.head_dim), OMNI_STREAM>>>(p);
  OMNI_CUDA_LAUNCHED();
  if (splits > 1) {
    k_attention_merge<<<unsigned(R), std::min(128, (a.head_dim + 31) / 32 * 32), 0, OMNI_STREAM>>>(
        p.part_o, p.part_ml, splits, R, a.n_heads, a.head_dim, out.raw(), p.dto);
    OMNI_CUDA_LAUNCHED();
    dev_.release(ws, ws_bytes);   // stream-ordered: freed after the merge has run
  }
}

void CudaOps::write_rows(const Tensor& src, const Tensor& rows, Tensor& dst) {
  if (rows.dtype() != DType::I32 || src.ndim() != 2 || dst.ndim() != 2 || src.cols() != dst.cols() ||
      rows.numel() != src.rows())
    throw std::invalid_argument("write_rows: " + src.describe() + " into " + dst.describe() + " at rows " +
                                rows.describe());
  if (src.rows() == 0) return;
  if (src.rows() > INT32_MAX) throw std::invalid_argument("write_rows: more than 2^31 rows");
  dev_.make_current();
  k_write_rows<<<unsigned(src.rows()), 128, 0, OMNI_STREAM>>>(src.raw(), float_code(src, "write_rows", "source"),
                                                              rows.data<int>(), dst.raw(),
                                                              float_code(dst, "write_rows", "destination"), src.cols());
  OMNI_CUDA_LAUNCHED();
}

void CudaOps::silu_mul(const Tensor& gate, const Tensor& up, Tensor& y) {
  same_numel(gate, up, "silu_mul");
  same_numel(gate, y, "silu_mul");
  const int64_t n = gate.numel();
  if (n == 0) return;
  dev_.make_current();
  k_eltwise<<<elt_blocks(n, dev_.sm_count()), 256, 0, OMNI_STREAM>>>(
      kSiluMul, gate.raw(), float_code(gate, "silu_mul", "gate"), up.raw(), float_code(up, "silu_mul", "up"), y.raw(),
      float_code(y, "silu_mul", "output"), n, 1);
  OMNI_CUDA_LAUNCHED();
}

void CudaOps::gelu_tanh(Tensor& x) {
  const int64_t n = x.numel();
  if (n == 0) return;
  dev_.make_current();
  const int dt = float_code(x, "gelu_tanh", "input");
  k_eltwise<<<elt_blocks(n, dev_.sm_count()), 256, 0, OMNI_STREAM>>>(kGelu, x.raw(), dt, nullptr, 0, x.raw(), dt, n, 1);
  OMNI_CUDA_LAUNCHED();
}

void CudaOps::add(const Tensor& a, const Tensor& b, Tensor& y) {
  same_numel(a, b, "add");
  same_numel(a, y, "add");
  const int64_t n = a.numel();
  if (n == 0) return;
  dev_.make_current();
  k_eltwise<<<elt_blocks(n, dev_.sm_count()), 256, 0, OMNI_STREAM>>>(kAdd, a.raw(), float_code(a, "add", "a"), b.raw(),
                                                                     float_code(b, "add", "b"), y.raw(),
                                                                     float_code(y, "add", "output"), n, 1);
  OMNI_CUDA_LAUNCHED();
}

void CudaOps::embedding(const Tensor& table, const Tensor& ids, Tensor& y) {
  if (ids.dtype() != DType::I32) throw std::invalid_argument("embedding: ids must be I32");
  const int64_t W = table.cols(), V = table.rows(), T = ids.numel();
  if (y.numel() != T * W) throw std::invalid_argument("embedding: output " + y.describe());
  if (T == 0) return;
  // The ids are checked on the host (a small download), so a bad id throws as on the CPU
  // instead of reading out of bounds on the GPU.
  std::vector<int32_t> host(static_cast<size_t>(T));
  dev_.download(host.data(), ids.raw(), host.size() * sizeof(int32_t));
  for (int32_t id : host)
    if (id < 0 || id >= V)
      throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(V));
  dev_.make_current();
  k_embedding<<<unsigned(T), 256, 0, OMNI_STREAM>>>(table.raw(), float_code(table, "embedding", "table"),
                                                     ids.data<int>(), y.raw(), float_code(y, "embedding", "output"), W);
  OMNI_CUDA_LAUNCHED();
}

void CudaOps::copy(const Tensor& src, Tensor& dst) {
  same_numel(src, dst, "copy");
  if (src.numel() == 0) return;
  dev_.make_current();
  if (src.dtype() == dst.dtype()) {
    OMNI_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDeviceToDevice, OMNI_STREAM));
    return;
  }
  const int64_t n = src.numel();
  k_eltwise<<<elt_blocks(n, dev_.sm_count()), 256, 0, OMNI_STREAM>>>(kConvert, src.raw(), code_of(src, "copy"), nullptr,
                                                                     0, dst.raw(), float_code(dst, "copy", "destination"),
                                                                     n, 1);
  OMNI_CUDA_LAUNCHED();
}

void CudaOps::fill_uniform(Tensor& x, uint64_t seed, float scale) {
  const int64_t n = x.numel();
  if (n == 0) return;
  dev_.make_current();
  k_fill_uniform<<<elt_blocks(n, dev_.sm_count()), 256, 0, OMNI_STREAM>>>(
      x.raw(), float_code(x, "fill_uniform", "tensor"), n, static_cast<unsigned long long>(seed), scale);
  OMNI_CUDA_LAUNCHED();
}

}  // namespace omni::kernels
