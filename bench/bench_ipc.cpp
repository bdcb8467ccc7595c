// bench_ipc: (a) round trip of an empty request over the Unix socket (p50/p99 µs),
// (b) hand-over of a 12 MP RGB picture (4000x3000x3 = 36 MB) through a sealed memfd
// versus a memcpy of its bytes.
//   bench_ipc [round_trips=20000] [image_reps=30]
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "ipc/memfd.h"
#include "ipc/messages.h"
#include "ipc/socket.h"

using namespace omni::ipc;
using Clock = std::chrono::steady_clock;

namespace {
double us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }
double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}
}  // namespace

int main(int argc, char** argv) {
  const int round_trips = argc > 1 ? std::atoi(argv[1]) : 20000;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 30;
  char tmpl[] = "/tmp/omni-bench-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/bench.sock";
  auto listener = listen_unix(path);

  // Server: decode every frame; answer status_request with a status, generate with done.
  std::thread server([&] {
    auto c = accept_unix(listener.get());
    FrameReader r;
    try {
      for (;;) {
        Frame f = recv_frame(c.get(), r);
        Message m = decode_message(f, r.limits());
        if (auto* s = std::get_if<StatusRequest>(&m)) {
          Status st;
          st.id = s->id;
          st.model = "bench";
          send_frame(c.get(), encode_message(st));
        } else if (auto* g = std::get_if<Generate>(&m)) {
          auto map = map_sealed_image(f.fds[0].get(), g->images[0].size, r.limits());
          volatile uint8_t sink = map.data()[map.size() - 1];  // touch one page
          (void)sink;
          Done d;
          d.id = g->id;
          send_frame(c.get(), encode_message(d));
        }
      }
    } catch (const IpcError&) {
      // client closed
    }
  });

  auto client = connect_unix(path);
  FrameReader cr;
  // (a) round trips
  std::vector<double> rt;
  rt.reserve(static_cast<std::size_t>(round_trips));
  for (int i = 0; i < round_trips + 1000; ++i) {
    const auto t0 = Clock::now();
    send_frame(client.get(), encode_message(StatusRequest{static_cast<uint64_t>(i + 1)}));
    Frame f = recv_frame(client.get(), cr);
    (void)decode_message(f, cr.limits());
    if (i >= 1000) rt.push_back(us(Clock::now() - t0));  // 1000 warm-up
  }

  // (b) 12 MP picture
  const std::size_t W = 4000, H = 3000, N = W * H * 3;
  std::vector<uint8_t> img(N);
  for (std::size_t i = 0; i < N; ++i) img[i] = static_cast<uint8_t>(i * 31 + (i >> 12));
  std::vector<uint8_t> dst(N);
  std::vector<double> t_memcpy, t_create, t_handover;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    std::memcpy(dst.data(), img.data(), N);
    t_memcpy.push_back(us(Clock::now() - t0));
    volatile uint8_t s = dst[static_cast<std::size_t>(i) * 7 % N];
    (void)s;

    t0 = Clock::now();
    UniqueFd mfd = make_sealed_memfd(img);
    t_create.push_back(us(Clock::now() - t0));

    Generate g;
    g.id = 1000000 + static_cast<uint64_t>(i);
    g.prompt = "describe";
    g.images = {ImageRef{0, N, ImageFormat::rgb, W, H}};
    const int fds[] = {mfd.get()};
    t0 = Clock::now();
    send_frame(client.get(), encode_message(g), fds);
    Frame f = recv_frame(client.get(), cr);
    (void)decode_message(f, cr.limits());
    t_handover.push_back(us(Clock::now() - t0));
  }
  client.reset();
  server.join();
  listener.reset();
  std::filesystem::remove_all(dir);

  std::printf("| measurement | p50 | p99 |\n|---|---|---|\n");
  std::printf("| (a) empty request round trip over the socket (status_request -> status), µs | %.1f | %.1f |\n",
              pct(rt, 0.50), pct(rt, 0.99));
  std::printf("| (b) memcpy of 36 MB (12 MP RGB), µs | %.0f | %.0f |\n", pct(t_memcpy, 0.5), pct(t_memcpy, 0.99));
  std::printf("| (b) fill + seal a memfd with 36 MB (the one copy the client pays), µs | %.0f | %.0f |\n",
              pct(t_create, 0.5), pct(t_create, 0.99));
  std::printf("| (b) hand-over of the sealed memfd: send fd, receive, check seals/size, mmap, reply, µs | %.1f | %.1f |\n",
              pct(t_handover, 0.5), pct(t_handover, 0.99));
  std::printf("round_trips=%d image_reps=%d\n", round_trips, reps);
  return 0;
}
