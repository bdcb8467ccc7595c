// The one attention op over a paged KV cache against a naive reference (double
// precision, one sequence at a time, keys gathered by hand): prefill and decode rows of
// several sequences in one call, contexts that are not a multiple of the block size,
// block tables out of order, GQA, head_dim 64 and 128, sequences sharing prefix blocks.
#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <random>

#include "kernels/device.h"
#include "kernels/ops.h"
#include "util/paged_layout.h"

using namespace omni::kernels;

namespace {

using Seq = omni::test::PagedSeq;

// out[i] = softmax over keys j <= (kv_len - q_rows) + i of scale · q_i · k_j, times v.
std::vector<double> reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                              const std::vector<Seq>& seqs, int H, int KVH, int D, int br, float scale) {
  const int qw = H * D, kw = KVH * D;
  int64_t total = 0;
  for (const auto& s : seqs) total += s.q_rows;
  std::vector<double> out(size_t(total * qw), 0.0);
  int64_t q0 = 0;
  for (const auto& s : seqs) {
    const int past = s.kv_len - s.q_rows;
    for (int i = 0; i < s.q_rows; ++i)
      for (int h = 0; h < H; ++h) {
        const int kvh = h / (H / KVH);
        const int visible = past + i + 1;
        std::vector<double> sc(static_cast<size_t>(visible));
        double mx = -1e300;
        for (int j = 0; j < visible; ++j) {
          const int64_t row = int64_t(s.blocks[size_t(j / br)]) * br + j % br;
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += double(q[size_t((q0 + i) * qw + h * D + d)]) * k[size_t(row * kw + kvh * D + d)];
          sc[size_t(j)] = dot * scale;
          mx = std::max(mx, sc[size_t(j)]);
        }
        double sum = 0;
        for (auto& x : sc) sum += (x = std::exp(x - mx));
        for (int j = 0; j < visible; ++j) {
          const int64_t row = int64_t(s.blocks[size_t(j / br)]) * br + j % br;
          for (int d = 0; d < D; ++d)
            out[size_t((q0 + i) * qw + h * D + d)] += sc[size_t(j)] / sum * v[size_t(row * kw + kvh * D + d)];
        }
      }
    q0 += s.q_rows;
  }
  return out;
}

double max_rel_error(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num = std::max(num, std::abs(double(got[i]) - want[i]));
    den = std::max(den, std::abs(want[i]));
  }
  return num / std::max(den, 1e-30);
}

// Runs one call of `seqs` on the CPU backend with a pool of n_blocks blocks of br rows.
void check_case(const std::vector<Seq>& seqs, int H, int KVH, int D, int br, int n_blocks, uint32_t seed) {
  auto dev = make_device({});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  int64_t T = 0;
  for (const auto& s : seqs) T += s.q_rows;
  std::vector<float> q(size_t(T * H * D)), k(size_t(int64_t(n_blocks) * br * KVH * D)), v(k.size());
  for (auto* x : {&q, &k, &v})
    for (auto& e : *x) e = u(rng);
  AttentionArgs a;
  a.n_heads = H;
  a.n_kv_heads = KVH;
  a.head_dim = D;
  a.scale = 1.0f / std::sqrt(float(D));
  AttentionLayout lay = omni::test::paged_layout(seqs, br);
  lay.upload(dev);
  Tensor tq = Tensor::from_host(dev, DType::F32, {T, int64_t(H) * D}, q.data());
  Tensor tk = Tensor::from_host(dev, DType::F32, {int64_t(n_blocks) * br, int64_t(KVH) * D}, k.data());
  Tensor tv = Tensor::from_host(dev, DType::F32, {int64_t(n_blocks) * br, int64_t(KVH) * D}, v.data());
  Tensor out = Tensor::empty(dev, DType::F32, {T, int64_t(H) * D});
  dev->ops().attention(tq, tk, tv, out, a, lay);
  const std::vector<double> want = reference(q, k, v, seqs, H, KVH, D, br, a.scale);
  CHECK(max_rel_error(out.to_host(), want) < 1e-5);
}

}  // namespace

TEST_CASE("paged attention equals the naive reference on random shapes", "[kernels]") {
  struct Shape {
    int H, KVH, D;
  };
  for (Shape sh : {Shape{4, 4, 64}, Shape{8, 2, 64}, Shape{4, 1, 128}, Shape{6, 2, 128}}) {
    INFO("heads " << sh.H << " kv heads " << sh.KVH << " head_dim " << sh.D);
    {   // prefill chunks and decode rows mixed, tables out of order, contexts off the block size
      // Blocks of 16 rows; a pool of 24 blocks handed out in a scrambled order.
      std::vector<int32_t> order(24);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), std::mt19937(7));
      auto take = [&, at = size_t(0)](int n) mutable {
        std::vector<int32_t> b(order.begin() + std::ptrdiff_t(at), order.begin() + std::ptrdiff_t(at + size_t(n)));
        at += size_t(n);
        return b;
      };
      std::vector<Seq> seqs = {
          {37, 37, take(3)},   // a whole prompt, 37 rows: the third block part full
          {1, 50, take(4)},    // a decode row after 49 cached
          {9, 30, take(2)},    // a later prefill chunk: 21 cached, 9 new
          {1, 1, take(1)},     // the first token of a sequence
          {16, 64, take(4)},   // a chunk that ends exactly on a block
      };
      check_case(seqs, sh.H, sh.KVH, sh.D, 16, 24, 11);
    }
    {   // sequences sharing their first two blocks (a reused prefix of 32 rows)
      std::vector<Seq> seqs = {{3, 35, {5, 2, 7}}, {1, 40, {5, 2, 0}}, {20, 44, {5, 2, 9}}};
      check_case(seqs, sh.H, sh.KVH, sh.D, 16, 12, 23);
    }
  }
}

TEST_CASE("the dense form is one sequence over all of k and v", "[kernels]") {
  // Vision tower and resampler calls: no causal mask; and a causal one with an offset.
  auto dev = make_device({});
  const int H = 2, D = 64, Tq = 5, Tk = 9;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> q(size_t(Tq * H * D)), k(size_t(Tk * H * D)), v(k.size());
  for (auto* x : {&q, &k, &v})
    for (auto& e : *x) e = u(rng);
  Tensor tq = Tensor::from_host(dev, DType::F32, {Tq, H * D}, q.data());
  Tensor tk = Tensor::from_host(dev, DType::F32, {Tk, H * D}, k.data());
  Tensor tv = Tensor::from_host(dev, DType::F32, {Tk, H * D}, v.data());
  AttentionArgs a;
  a.n_heads = a.n_kv_heads = H;
  a.head_dim = D;
  a.scale = 0.125f;
  a.causal_offset = Tk - Tq;   // the last Tq rows of a Tk-token sequence
  Tensor out = Tensor::empty(dev, DType::F32, {Tq, H * D});
  dev->ops().attention(tq, tk, tv, out, a);
  const std::vector<double> want = reference(q, k, v, {{Tq, Tk, {0}}}, H, H, D, Tk, a.scale);
  CHECK(max_rel_error(out.to_host(), want) < 1e-5);
}

TEST_CASE("a layout pointing outside q or the pool is refused", "[kernels]") {
  auto dev = make_device({});
  Tensor q = Tensor::empty(dev, DType::F32, {4, 64}), kv = Tensor::empty(dev, DType::F32, {32, 64});
  Tensor out = Tensor::empty(dev, DType::F32, {4, 64});
  AttentionArgs a;
  a.n_heads = a.n_kv_heads = 1;
  a.head_dim = 64;
  AttentionLayout lay;
  lay.block_rows = 16;
  lay.seqs = {{0, 4, 20, 16, 0}};
  lay.block_table = {0, 2};   // block 2 is past the 2-block pool
  CHECK_THROWS_WITH(dev->ops().attention(q, kv, kv, out, a, lay), Catch::Contains("block 2 lies outside"));
  lay.block_table = {0};      // 20 keys need two blocks
  CHECK_THROWS_WITH(dev->ops().attention(q, kv, kv, out, a, lay), Catch::Contains("needs 2 blocks"));
  lay.block_table = {0, 1};
  lay.seqs = {{2, 4, 20, 16, 0}};   // rows 2..5 of a 4-row q
  CHECK_THROWS_WITH(dev->ops().attention(q, kv, kv, out, a, lay), Catch::Contains("outside the 4 rows"));
}

TEST_CASE("write_rows scatters rows into a pool", "[kernels]") {
  auto dev = make_device({});
  std::vector<float> src = {1, 2, 3, 4, 5, 6};
  Tensor s = Tensor::from_host(dev, DType::F32, {3, 2}, src.data());
  std::vector<float> zeros(10, 0.0f);
  Tensor dst = Tensor::from_host(dev, DType::F32, {5, 2}, zeros.data());
  const std::vector<int32_t> rows = {4, 0, 2};
  dev->ops().write_rows(s, Tensor::from_host_i32(dev, {3}, rows.data()), dst);
  CHECK(dst.to_host() == std::vector<float>{3, 4, 0, 0, 5, 6, 0, 0, 1, 2});
  const std::vector<int32_t> bad = {5, 0, 1};
  CHECK_THROWS_WITH(dev->ops().write_rows(s, Tensor::from_host_i32(dev, {3}, bad.data()), dst),
                    Catch::Contains("row 5 outside"));
}
