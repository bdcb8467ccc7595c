#include "kernels/cpu/cpu_ops.h"

#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/cpu_threads.h"
#include "kernels/cpu/simd/row_dots.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace omni::kernels {

namespace {

void require_f32(const Tensor& t, const char* op, const char* what) {
  if (t.dtype() != DType::F32)
    throw std::invalid_argument(std::string(op) + ": " + what + " must be F32 on the CPU backend, got " +
                                t.describe());
}

void require_same_numel(const Tensor& a, const Tensor& b, const char* op) {
  if (a.numel() != b.numel())
    throw std::invalid_argument(std::string(op) + ": " + a.describe() + " vs " + b.describe());
}

}  // namespace

CpuOps::CpuOps() { blas_single_threaded(); }

void CpuOps::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  require_f32(x, "linear", "input");
  require_f32(y, "linear", "output");
  if (w.dtype() == DType::I32) throw std::invalid_argument("linear: weight " + w.describe() + " is not a float type");
  const int64_t N = w.rows(), K = w.cols(), M = x.numel() / std::max<int64_t>(K, 1);
  if (x.numel() != M * K || y.numel() != M * N)
    throw std::invalid_argument("linear: shapes " + x.describe() + " x " + w.describe() + " -> " +
                                y.describe());
  const float* b = nullptr;
  if (bias) {
    require_f32(*bias, "linear", "bias");
    if (bias->numel() != N) throw std::invalid_argument("linear: bias " + bias->describe());
    b = bias->data<float>();
  }
  cpu_matmul(x.data<float>(), M, K, w, b, y.data<float>());
}

void CpuOps::rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  require_f32(x, "rms_norm", "input");
  require_same_numel(x, y, "rms_norm");
  const int64_t W = w.numel();
  if (W == 0 || x.numel() % W != 0) throw std::invalid_argument("rms_norm: width of " + w.describe());
  const int64_t R = x.numel() / W;
  const float* in = x.data<float>();
  const float* g = w.data<float>();
  float* out = y.data<float>();
#pragma omp parallel for num_threads(cpu_threads()) if (R * W > 65536)
  for (int64_t r = 0; r < R; ++r) {
    const float* row = in + r * W;
    double ss = 0;
    for (int64_t i = 0; i < W; ++i) ss += double(row[i]) * row[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / double(W) + eps));
    for (int64_t i = 0; i < W; ++i) out[r * W + i] = row[i] * inv * g[i];
  }
}

void CpuOps::layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) {
  require_f32(x, "layer_norm", "input");
  require_same_numel(x, y, "layer_norm");
  const int64_t W = w.numel();
  if (W == 0 || x.numel() % W != 0 || b.numel() != W)
    throw std::invalid_argument("layer_norm: width of " + w.describe());
  const int64_t R = x.numel() / W;
  const float* in = x.data<float>();
  const float* g = w.data<float>();
  const float* bb = b.data<float>();
  float* out = y.data<float>();
#pragma omp parallel for num_threads(cpu_threads()) if (R * W > 65536)
  for (int64_t r = 0; r < R; ++r) {
    const float* row = in + r * W;
    double mean = 0;
    for (int64_t i = 0; i < W; ++i) mean += row[i];
    mean /= double(W);
    double var = 0;
    for (int64_t i = 0; i < W; ++i) var += (row[i] - mean) * (row[i] - mean);
    var /= double(W);
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < W; ++i) out[r * W + i] = static_cast<float>((row[i] - mean) * inv) * g[i] + bb[i];
  }
}

void CpuOps::rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq, int n_heads, int head_dim) {
  require_f32(x, "rope", "input");
  require_f32(inv_freq, "rope", "inv_freq");
  const int64_t T = positions.numel();
  const int half = head_dim / 2;
  if (positions.dtype() != DType::I32 || x.numel() != T * n_heads * head_dim || head_dim % 2 ||
      inv_freq.numel() != half)
    throw std::invalid_argument("rope: " + x.describe() + " with positions " + positions.describe() +
                                " and inv_freq " + inv_freq.describe());
  const int32_t* pos = positions.data<int32_t>();
  const float* freq = inv_freq.data<float>();
  float* data = x.data<float>();
#pragma omp parallel for num_threads(cpu_threads()) if (T * n_heads > 64)
  for (int64_t t = 0; t < T; ++t) {
    for (int i = 0; i < half; ++i) {
      const double a = double(pos[t]) * double(freq[i]);
      const double c = std::cos(a), s = std::sin(a);
      for (int h = 0; h < n_heads; ++h) {
        float* v = data + (t * n_heads + h) * head_dim;
        const double x1 = v[i], x2 = v[i + half];
        v[i] = static_cast<float>(x1 * c - x2 * s);
        v[i + half] = static_cast<float>(x2 * c + x1 * s);
      }
    }
  }
}

namespace {

// The softmax of one row of scores over its `visible` keys, in place; zeros beyond.
void softmax_row(float* row, int64_t visible, int64_t n_k) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < visible; ++j) mx = std::max(mx, row[j]);
  double sum = 0;
  for (int64_t j = 0; j < visible; ++j) {
    row[j] = std::exp(row[j] - mx);
    sum += row[j];
  }
  const float inv = visible > 0 ? static_cast<float>(1.0 / sum) : 0.0f;
  for (int64_t j = 0; j < visible; ++j) row[j] *= inv;
  for (int64_t j = visible; j < n_k; ++j) row[j] = 0.0f;
}

// The keys query row i of `s` sees: all of them, or those up to its position (causal).
int64_t visible_keys(const AttentionSeq& s, int64_t i) {
  return s.causal_offset < 0 ? s.kv_len : std::min<int64_t>(s.kv_len, int64_t(s.causal_offset) + i + 1);
}

// The pool row of key j of a sequence whose block table is `table`.
int64_t pool_row(const int32_t* table, int64_t j, int64_t block_rows) {
  return int64_t(table[j / block_rows]) * block_rows + j % block_rows;
}

struct AttnShape {
  int64_t qw, kw, br;
  int head_dim, group;
  float scale;
};

// One head of one sequence with a few query rows (decode): scores key by key straight from
// the KV blocks (no gather), the weighted sum of values likewise.
void attend_few(const float* q, const float* k, const float* v, float* out, const AttnShape& a, const AttentionSeq& s,
                const int32_t* table, int h, std::vector<float>& scores) {
  const int64_t n_q = s.q_rows, n_k = s.kv_len, hd = a.head_dim;
  const int kvh = h / a.group;
  const RowDotsFn dot = row_dot_kernels().f32;
  scores.resize(size_t(n_q * n_k));
  const float* qh = q + int64_t(s.q_begin) * a.qw + int64_t(h) * hd;
  for (int64_t j = 0; j < n_k; ++j) {
    const int64_t row = pool_row(table, j, a.br);
    float d[kMaxDotRows];
    dot(k + row * a.kw + int64_t(kvh) * hd, qh, a.qw, int(n_q), hd, d);
    for (int64_t i = 0; i < n_q; ++i) scores[size_t(i * n_k + j)] = d[i] * a.scale;
  }
  for (int64_t i = 0; i < n_q; ++i) {
    const int64_t visible = visible_keys(s, i);
    softmax_row(scores.data() + i * n_k, visible, n_k);
    float* o = out + (int64_t(s.q_begin) + i) * a.qw + int64_t(h) * hd;
    std::fill(o, o + hd, 0.0f);
    for (int64_t j = 0; j < visible; ++j) {
      const int64_t row = pool_row(table, j, a.br);
      const float p = scores[size_t(i * n_k + j)];
      const float* vr = v + row * a.kw + int64_t(kvh) * hd;
      for (int64_t c = 0; c < hd; ++c) o[c] += p * vr[c];
    }
  }
}

// One head of one sequence with many query rows (prefill, the vision tower): two sgemms
// over the sequence's keys and values laid out in order (ks, vs).
void attend_many(const float* q, const float* ks, const float* vs, float* out, const AttnShape& a,
                 const AttentionSeq& s, int h, std::vector<float>& scores) {
  const int64_t n_q = s.q_rows, n_k = s.kv_len;
  const int kvh = h / a.group;
  scores.resize(size_t(n_q * n_k));
  const float* qh = q + int64_t(s.q_begin) * a.qw + int64_t(h) * a.head_dim;
  const float* kh = ks + int64_t(kvh) * a.head_dim;
  const float* vh = vs + int64_t(kvh) * a.head_dim;
  float* oh = out + int64_t(s.q_begin) * a.qw + int64_t(h) * a.head_dim;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n_q), int(n_k), a.head_dim, a.scale, qh, int(a.qw), kh,
              int(a.kw), 0.0f, scores.data(), int(n_k));
  for (int64_t i = 0; i < n_q; ++i) {
    const int64_t visible = visible_keys(s, i);
    softmax_row(scores.data() + i * n_k, visible, n_k);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n_q), a.head_dim, int(n_k), 1.0f, scores.data(),
              int(n_k), vh, int(a.kw), 0.0f, oh, int(a.qw));
}

}  // namespace

void CpuOps::attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionArgs& a,
                       const AttentionLayout& lay) {
  require_f32(q, "attention", "q");
  require_f32(k, "attention", "k");
  require_f32(v, "attention", "v");
  require_f32(out, "attention", "out");
  if (a.n_heads <= 0 || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0 || a.head_dim <= 0)
    throw std::invalid_argument("attention: " + std::to_string(a.n_heads) + " heads over " +
                                std::to_string(a.n_kv_heads) + " kv heads");
  const int64_t qw = int64_t(a.n_heads) * a.head_dim, kw = int64_t(a.n_kv_heads) * a.head_dim;
  const int64_t Tq = q.numel() / qw, Tk = k.numel() / kw;
  if (q.numel() != Tq * qw || k.numel() != Tk * kw || v.numel() != Tk * kw || out.numel() != Tq * qw)
    throw std::invalid_argument("attention: q " + q.describe() + ", k " + k.describe() + ", v " +
                                v.describe() + ", out " + out.describe());
  lay.check(Tq, Tk);
  const AttnShape sh{qw, kw, lay.block_rows, a.head_dim, a.n_heads / a.n_kv_heads, a.scale};
  const float* kp = k.data<float>();
  const float* vp = v.data<float>();
  // Sequences with many query rows read their keys in order: the pool rows themselves when
  // their blocks are consecutive (a dense call, a freshly filled pool), else gathered once
  // here for all heads. Sequences of a few rows (decode) read the blocks where they lie.
  struct Keys {
    const float* k = nullptr;
    const float* v = nullptr;
    std::vector<float> kbuf, vbuf;
  };
  std::vector<Keys> keys(lay.seqs.size());
  for (size_t si = 0; si < lay.seqs.size(); ++si) {
    const AttentionSeq& s = lay.seqs[si];
    float* o_rows = out.data<float>() + int64_t(s.q_begin) * qw;
    if (s.q_rows > 0 && s.kv_len == 0) std::fill(o_rows, o_rows + s.q_rows * qw, 0.0f);   // softmax of nothing
    if (s.q_rows <= kMaxDotRows || s.kv_len == 0) continue;
    const int64_t br = lay.block_rows, n_k = s.kv_len, n_blocks = (n_k + br - 1) / br;
    const int32_t* table = lay.block_table.data() + s.table_begin;
    bool consecutive = true;
    for (int64_t b = 1; b < n_blocks; ++b) consecutive &= table[b] == table[0] + b;
    Keys& ks = keys[si];
    ks.k = kp + int64_t(table[0]) * br * kw;
    ks.v = vp + int64_t(table[0]) * br * kw;
    if (consecutive) continue;
    ks.kbuf.resize(size_t(n_k * kw));
    ks.vbuf.resize(size_t(n_k * kw));
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t rows = std::min(br, n_k - b * br);
      const size_t from = size_t(int64_t(table[b]) * br * kw), to = size_t(b * br * kw), n = size_t(rows * kw);
      std::copy_n(kp + from, n, ks.kbuf.data() + to);
      std::copy_n(vp + from, n, ks.vbuf.data() + to);
    }
    ks.k = ks.kbuf.data();
    ks.v = ks.vbuf.data();
  }
  // Every (sequence, head) pair is a task for the device's threads; OpenBLAS runs
  // single-threaded inside each (kernels/cpu/cpu_threads.h).
  const int64_t tasks = int64_t(lay.seqs.size()) * a.n_heads;
  int64_t work = 0;
  for (const AttentionSeq& s : lay.seqs) work += int64_t(s.q_rows) * s.kv_len;
  const int threads = cpu_threads();
#pragma omp parallel num_threads(threads) if (threads > 1 && tasks > 1 && work * a.n_heads * a.head_dim >= (1 << 16))
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < tasks; ++t) {
      const AttentionSeq& s = lay.seqs[size_t(t / a.n_heads)];
      const int h = int(t % a.n_heads);
      if (s.q_rows == 0 || s.kv_len == 0) continue;
      if (s.q_rows <= kMaxDotRows)
        attend_few(q.data<float>(), kp, vp, out.data<float>(), sh, s, lay.block_table.data() + s.table_begin, h, scores);
      else {
        const Keys& ks = keys[size_t(t / a.n_heads)];
        attend_many(q.data<float>(), ks.k, ks.v, out.data<float>(), sh, s, h, scores);
      }
    }
  }
}

void CpuOps::write_rows(const Tensor& src, const Tensor& rows, Tensor& dst) {
  require_f32(dst, "write_rows", "destination");
  if (rows.dtype() != DType::I32 || src.ndim() != 2 || dst.ndim() != 2 || src.cols() != dst.cols() ||
      rows.numel() != src.rows())
    throw std::invalid_argument("write_rows: " + src.describe() + " into " + dst.describe() + " at rows " +
                                rows.describe());
  const int64_t W = src.cols();
  const int32_t* at = rows.data<int32_t>();
  for (int64_t i = 0; i < src.rows(); ++i) {
    if (at[i] < 0 || at[i] >= dst.rows())
      throw std::invalid_argument("write_rows: row " + std::to_string(at[i]) + " outside " + dst.describe());
    float* d = dst.data<float>() + int64_t(at[i]) * W;
    if (src.dtype() == DType::F32) std::copy_n(src.data<float>() + i * W, W, d);
    else convert_to_f32(static_cast<const char*>(src.raw()) + size_t(i * W) * dtype_size(src.dtype()), src.dtype(), d, size_t(W));
  }
}

void CpuOps::silu_mul(const Tensor& gate, const Tensor& up, Tensor& y) {
  require_same_numel(gate, up, "silu_mul");
  require_same_numel(gate, y, "silu_mul");
  const int64_t n = gate.numel();
  const float* g = gate.data<float>();
  const float* u = up.data<float>();
  float* o = y.data<float>();
#pragma omp parallel for num_threads(cpu_threads()) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void CpuOps::gelu_tanh(Tensor& x) {
  const int64_t n = x.numel();
  float* d = x.data<float>();
  const double k = std::sqrt(2.0 / M_PI);
#pragma omp parallel for num_threads(cpu_threads()) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const double u = d[i];
    d[i] = static_cast<float>(0.5 * u * (1.0 + std::tanh(k * (u + 0.044715 * u * u * u))));
  }
}

void CpuOps::add(const Tensor& a, const Tensor& b, Tensor& y) {
  require_same_numel(a, b, "add");
  require_same_numel(a, y, "add");
  const int64_t n = a.numel();
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* o = y.data<float>();
#pragma omp parallel for num_threads(cpu_threads()) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) o[i] = pa[i] + pb[i];
}

void CpuOps::embedding(const Tensor& table, const Tensor& ids, Tensor& y) {
  if (ids.dtype() != DType::I32) throw std::invalid_argument("embedding: ids must be I32");
  if (table.dtype() == DType::I32) throw std::invalid_argument("embedding: table " + table.describe());
  const int64_t W = table.cols(), V = table.rows(), T = ids.numel();
  if (y.numel() != T * W) throw std::invalid_argument("embedding: output " + y.describe());
  const int32_t* id = ids.data<int32_t>();
  const size_t rb = row_bytes(table.dtype(), W);
  for (int64_t t = 0; t < T; ++t) {
    if (id[t] < 0 || id[t] >= V)
      throw std::out_of_range("token id " + std::to_string(id[t]) + " outside the vocabulary of " +
                              std::to_string(V));
    // A table kept as bf16 or Q8_0 (kernels/cpu_weights.h) is widened row by row.
    convert_rows_to_f32(static_cast<const uint8_t*>(table.raw()) + size_t(id[t]) * rb, table.dtype(), 1, W,
                        y.data<float>() + t * W);
  }
}

void CpuOps::copy(const Tensor& src, Tensor& dst) {
  require_same_numel(src, dst, "copy");
  if (src.dtype() == dst.dtype()) {
    std::copy_n(static_cast<const char*>(src.raw()), src.nbytes(), static_cast<char*>(dst.raw()));
    return;
  }
  require_f32(dst, "copy", "destination");
  convert_rows_to_f32(src.raw(), src.dtype(), src.rows(), src.cols(), dst.data<float>());
}

}  // namespace omni::kernels
