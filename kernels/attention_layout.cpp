// The attention op's sequence layout (ops.h): packing, upload, bounds checks, and the
// dense one-sequence form every backend gets for free.
#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

#include "kernels/ops.h"

namespace omni::kernels {

std::vector<int32_t> AttentionLayout::packed() const {
  std::vector<int32_t> out;
  out.reserve(seqs.size() * 5 + block_table.size());
  for (const auto& s : seqs)
    out.insert(out.end(), {s.q_begin, s.q_rows, s.kv_len, s.causal_offset, s.table_begin});
  out.insert(out.end(), block_table.begin(), block_table.end());
  return out;
}

void AttentionLayout::upload(const std::shared_ptr<Device>& dev) {
  const std::vector<int32_t> p = packed();
  on_device = Tensor::from_host_i32(dev, {int64_t(p.size())}, p.data());
}

void AttentionLayout::check(int64_t q_rows_total, int64_t kv_rows) const {
  if (block_rows <= 0) throw std::invalid_argument("attention: block_rows " + std::to_string(block_rows));
  for (size_t i = 0; i < seqs.size(); ++i) {
    const AttentionSeq& s = seqs[i];
    const std::string who = "attention: sequence " + std::to_string(i);
    if (s.q_begin < 0 || s.q_rows < 0 || int64_t(s.q_begin) + s.q_rows > q_rows_total)
      throw std::invalid_argument(who + " has query rows [" + std::to_string(s.q_begin) + ", +" +
                                  std::to_string(s.q_rows) + ") outside the " + std::to_string(q_rows_total) + " rows");
    if (s.kv_len < 0) throw std::invalid_argument(who + " has kv_len " + std::to_string(s.kv_len));
    const int64_t n_blocks = (int64_t(s.kv_len) + block_rows - 1) / block_rows;
    if (s.table_begin < 0 || s.table_begin + n_blocks > int64_t(block_table.size()))
      throw std::invalid_argument(who + " needs " + std::to_string(n_blocks) + " blocks from table entry " +
                                  std::to_string(s.table_begin) + " of " + std::to_string(block_table.size()));
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t blk = block_table[size_t(s.table_begin + b)];
      if (blk < 0 || (blk + 1) * block_rows > kv_rows)
        throw std::invalid_argument(who + ": block " + std::to_string(blk) + " lies outside k/v of " +
                                    std::to_string(kv_rows) + " rows");
    }
  }
}

void Ops::attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionArgs& args) {
  if (args.n_heads <= 0 || args.n_kv_heads <= 0 || args.head_dim <= 0)
    throw std::invalid_argument("attention: " + std::to_string(args.n_heads) + " heads over " +
                                std::to_string(args.n_kv_heads) + " kv heads of " + std::to_string(args.head_dim));
  const int64_t qw = int64_t(args.n_heads) * args.head_dim, kw = int64_t(args.n_kv_heads) * args.head_dim;
  const int64_t Tq = q.numel() / qw, Tk = k.numel() / kw;
  if (Tq > INT32_MAX || Tk > INT32_MAX) throw std::invalid_argument("attention: more than 2^31 rows");
  AttentionLayout lay;
  lay.block_rows = int32_t(std::max<int64_t>(Tk, 1));
  lay.seqs.push_back({0, int32_t(Tq), int32_t(Tk), int32_t(std::max<int64_t>(-1, std::min<int64_t>(args.causal_offset, INT32_MAX))), 0});
  lay.block_table.push_back(0);
  attention(q, k, v, out, args, lay);
}

}  // namespace omni::kernels
