// The CPU linear layer's two paths (kernels/cpu/cpu_matmul.h) over the rows M of a batch:
// row dots straight from the stored weights against sgemm over tiles widened to float32,
// for every weight dtype a cpu device keeps, so that small_batch_rows(), where
// cpu_matmul switches from one to the other, is a measured figure (docs/PERFORMANCE.md, "CPU weights").
//
//   bench_cpu_matmul [N=4864] [K=896] [threads=cpu_threads()]
// prints one JSON line per (dtype, M, path) and a table of the faster path per M.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_matmul.h"
#include "kernels/cpu/cpu_threads.h"
#include "kernels/cpu/simd/row_dots.h"
#include "kernels/device.h"

using namespace omni::kernels;
using Clock = std::chrono::steady_clock;

namespace {

// Best seconds per call over repeats lasting at least 0.3 s in all.
template <class F>
double best_seconds(F&& f) {
  f();   // warm: pages touched, tiles allocated
  double best = 1e30, total = 0;
  for (int i = 0; i < 1000 && (total < 0.3 || i < 3); ++i) {
    const auto t0 = Clock::now();
    f();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t N = argc > 1 ? std::stoll(argv[1]) : 4864, K = argc > 2 ? std::stoll(argv[2]) : 896;
  if (argc > 3) set_cpu_threads(std::stoi(argv[3]));
  auto dev = make_device({DeviceId::Kind::CPU, 0});
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> wf(size_t(N * K));
  for (auto& v : wf) v = nd(rng);
  const std::vector<int64_t> Ms = {1, 2, 4, 8, 12, 16, 20, 24, 32, 48, 64, 128};
  std::vector<float> x(size_t(Ms.back() * K), 0.5f), y(size_t(Ms.back() * N));
  std::printf("# N=%lld K=%lld threads=%d row dots: %s\n", (long long)N, (long long)K, cpu_threads(), row_dot_kernels().isa);
  std::string table = "| dtype | M | row dots ms | tiled sgemm ms | faster |\n|---|---|---|---|---|\n";
  for (DType t : {DType::F32, DType::BF16, DType::Q8_0}) {
    // Copies enough to pass 512 MiB, taken in turn, so the weights come from memory as in a
    // decode step and not from the last level cache.
    const double bytes = double(row_bytes(t, K)) * double(N);
    std::vector<Tensor> ws;
    for (double held = 0; held < 512.0 * (1 << 20); held += bytes) ws.push_back(Tensor::from_host(dev, t, {N, K}, wf.data()));
    size_t turn = 0;
    for (int64_t M : Ms) {
      double s[2];
      for (int small = 1; small >= 0; --small) {
        s[small] = best_seconds([&] { cpu_matmul_path(x.data(), M, K, ws[turn++ % ws.size()], nullptr, y.data(), small == 1); });
        std::printf(
            "{\"dtype\":\"%s\",\"M\":%lld,\"path\":\"%s\",\"ms\":%.4f,\"gflops\":%.2f,\"weight_gb_s\":%.2f}\n",
            std::string(dtype_name(t)).c_str(), (long long)M, small ? "row_dots" : "tiled_sgemm", s[small] * 1e3,
            2.0 * double(M) * double(N) * double(K) / s[small] * 1e-9, bytes / s[small] * 1e-9);
      }
      char line[200];
      std::snprintf(line, sizeof line, "| %s | %lld | %.3f | %.3f | %s |\n", std::string(dtype_name(t)).c_str(), (long long)M,
                    s[1] * 1e3, s[0] * 1e3, s[1] <= s[0] ? "row dots" : "sgemm");
      table += line;
    }
  }
  std::printf("\n%s", table.c_str());
  return 0;
}
