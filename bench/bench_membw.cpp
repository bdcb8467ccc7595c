// Memory bandwidth of this host, the ceiling a CPU decode is measured against
// (bench/run_cpu_bench.sh, bench/cpu_bench_table.py): decode reads every weight once per
// token, so weight bytes x tokens/s over these is the share of the memory system it uses.
//
//   bench_membw [--mib 1024] [--reps 5] [--threads 1,2]
//
// Two buffers of MIB MiB each (far above any cache), split among the threads, each thread
// first touching its own part. Per thread count, best of REPS:
//   copy: memcpy of one buffer into the other; copy_bytes_s counts the bytes copied (each
//         read once and written once), as memcpy-style bandwidth figures do;
//   read: summing one buffer as 64-bit words, 16 bytes at a time (the sum printed so it is
//         not optimized away); read_bytes_s counts the bytes read.
// Prints one JSON line per thread count:
//   {"bench":"membw","threads":N,"buffer_bytes":..,"copy_bytes_s":..,"read_bytes_s":..}
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Words = uint64_t __attribute__((vector_size(16)));   // two 64-bit words

// Runs job(t, begin, end) on `threads` threads over [0, words), each its own contiguous part;
// returns the seconds until the last one is done.
template <class Job>
double run_split(int threads, size_t words, const Job& job) {
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  const size_t per = ((words + size_t(threads) - 1) / size_t(threads) + 1) / 2 * 2;   // even: whole Words
  for (int t = 0; t < threads; ++t) {
    const size_t b = std::min(words, per * size_t(t)), e = std::min(words, b + per);
    pool.emplace_back([&job, t, b, e] { job(t, b, e); });
  }
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<int> parse_threads(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    const int n = std::atoi(item.c_str());
    if (n < 1) {
      std::fprintf(stderr, "bench_membw: --threads wants a list of counts >= 1, not '%s'\n", text.c_str());
      std::exit(2);
    }
    out.push_back(n);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 1024;
  int reps = 5;
  std::vector<int> thread_counts = {1, 2};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--mib") mib = std::strtoull(value.c_str(), nullptr, 10);
    else if (key == "--reps") reps = std::max(1, std::atoi(value.c_str()));
    else if (key == "--threads") thread_counts = parse_threads(value);
    else {
      std::fprintf(stderr, "bench_membw: unknown option %s (--mib, --reps, --threads)\n", key.c_str());
      return 2;
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "bench_membw: option %s has no value\n", argv[argc - 1]);
    return 2;
  }
  const size_t bytes = std::max<size_t>(mib, 1) << 20, words = bytes / 8;
  // Not value-initialized: the threads' first touch below places and faults in the pages.
  struct Free {
    void operator()(uint64_t* p) const { std::free(p); }
  };
  auto buffer = [&] { return std::unique_ptr<uint64_t[], Free>(static_cast<uint64_t*>(std::aligned_alloc(64, bytes))); };
  auto src = buffer(), dst = buffer();
  if (!src || !dst) {
    std::fprintf(stderr, "bench_membw: cannot allocate 2 x %zu bytes\n", bytes);
    return 1;
  }
  for (int threads : thread_counts) {
    run_split(threads, words, [&](int, size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) src[i] = i * 0x9E3779B97F4A7C15ull;
      std::memset(dst.get() + b, 0, (e - b) * 8);
    });
    double copy_s = 1e30, read_s = 1e30;
    std::vector<uint64_t> sums(static_cast<size_t>(threads), 0);
    uint64_t checksum = 0;
    for (int r = 0; r < reps; ++r) {
      copy_s = std::min(copy_s, run_split(threads, words, [&](int, size_t b, size_t e) {
        std::memcpy(dst.get() + b, src.get() + b, (e - b) * 8);
      }));
      read_s = std::min(read_s, run_split(threads, words, [&](int t, size_t b, size_t e) {
        // Four 16-byte vector accumulators (GCC vector extension, SSE2 at least): the
        // loads, not the adds, must be what limits it.
        const Words* v = reinterpret_cast<const Words*>(src.get());
        Words s0 = {}, s1 = {}, s2 = {}, s3 = {};
        size_t i = b / 2;
        for (const size_t n = e / 2; i + 4 <= n; i += 4) {
          s0 += v[i];
          s1 += v[i + 1];
          s2 += v[i + 2];
          s3 += v[i + 3];
        }
        s0 += s1 + s2 + s3;
        uint64_t tail = 0;
        for (size_t w = i * 2; w < e; ++w) tail += src[w];
        sums[size_t(t)] = s0[0] + s0[1] + tail;
      }));
      for (uint64_t s : sums) checksum += s;
    }
    const nlohmann::json line = {{"bench", "membw"},
                                 {"threads", threads},
                                 {"buffer_bytes", bytes},
                                 {"reps", reps},
                                 {"copy_bytes_s", double(bytes) / copy_s},
                                 {"read_bytes_s", double(bytes) / read_s},
                                 {"checksum", checksum + dst[words / 2]}};
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}
