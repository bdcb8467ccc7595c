#pragma once
// The attention layout of a list of sequences, as the decoder builds it for one step: each
// sequence's query rows follow the previous one's, and its new rows are the last q_rows of
// its kv_len keys. Shared by the CPU (tests/kernels) and CUDA (tests/cuda) paged cases.
#include <vector>

#include "kernels/ops.h"

namespace omni::test {

struct PagedSeq {
  int q_rows, kv_len;
  std::vector<int32_t> blocks;   // its block table
};

inline kernels::AttentionLayout paged_layout(const std::vector<PagedSeq>& seqs, int block_rows) {
  kernels::AttentionLayout lay;
  lay.block_rows = block_rows;
  int32_t q0 = 0;
  for (const auto& s : seqs) {
    lay.seqs.push_back({q0, s.q_rows, s.kv_len, s.kv_len - s.q_rows, int32_t(lay.block_table.size())});
    lay.block_table.insert(lay.block_table.end(), s.blocks.begin(), s.blocks.end());
    q0 += s.q_rows;
  }
  return lay;
}

}  // namespace omni::test
