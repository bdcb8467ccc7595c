#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <thread>

#include "ipc/asio_connection.h"
#include "ipc/memfd.h"
#include "ipc_test_util.h"

using namespace omni::ipc;
using boost::asio::local::stream_protocol;

namespace {
// A minimal server in the shape the daemon will have: acceptor from listen_unix,
// AsioConnection per client, decode + contract-conforming replies, tokens sent from a
// worker thread.
struct MiniServer {
  boost::asio::io_context io;
  stream_protocol::acceptor acceptor{io};
  std::thread thread;
  std::atomic<int> closed{0};
  std::atomic<int> images_ok{0};
  std::vector<std::thread> workers;
  Limits limits;
  std::string path;

  explicit MiniServer(const std::string& p) : path(p) {
    acceptor.assign(stream_protocol(), listen_unix(path).release());
    accept();
    thread = std::thread([this] { io.run(); });
  }
  ~MiniServer() {
    boost::asio::post(io, [this] { acceptor.close(); });
    for (auto& w : workers) w.join();
    io.stop();
    thread.join();
  }
  void accept() {
    acceptor.async_accept([this](const boost::system::error_code& ec, stream_protocol::socket s) {
      if (ec) return;
      auto conn = AsioConnection::create(std::move(s), limits);
      std::weak_ptr<AsioConnection> weak = conn;
      conn->start(
          [this, weak](Frame&& f) {
            auto c = weak.lock();
            if (!c) return;
            uint64_t id = 0;
            try {
              Message m = decode_message(f, limits, &id);
              if (std::holds_alternative<Hello>(m)) {
                HelloOk ok;
                ok.server_version = "mini";
                ok.model = "none";
                c->send(ok);
              } else if (auto* g = std::get_if<Generate>(&m)) {
                for (const auto& im : g->images) (void)map_sealed_image(f.fds[im.fd_index].get(), im.size, limits);
                images_ok += static_cast<int>(g->images.size());
                const uint64_t gid = g->id;
                workers.emplace_back([c, gid] {  // tokens from another thread
                  for (int i = 0; i < 3; ++i) c->send(Token{gid, "t" + std::to_string(i), i});
                  Done d;
                  d.id = gid;
                  d.completion_tokens = 3;
                  c->send(d);
                });
              }
            } catch (const IpcError& e) {
              c->send(ErrorMsg{id, e.code(), e.what()});
            }
          },
          [this, conn](const Error&) { ++closed; });
      accept();
    });
  }
};

Message recv_msg(int fd, FrameReader& r) { return decode_message(recv_frame(fd, r, 3000), r.limits()); }
}  // namespace

TEST_CASE("AsioConnection: handshake, generate with a memfd, tokens from another thread") {
  omni_test::TempDir dir;
  const int before = omni_test::count_open_fds();
  {
    MiniServer server(dir.path + "/s.sock");
    auto fd = connect_unix(server.path);
    FrameReader r;
    send_frame(fd.get(), encode_message(Hello{}));
    REQUIRE(std::holds_alternative<HelloOk>(recv_msg(fd.get(), r)));
    std::vector<uint8_t> img(1 << 20, 3);
    auto mfd = make_sealed_memfd(img);
    Generate g;
    g.id = 5;
    g.prompt = "q";
    g.images = {ImageRef{0, img.size(), ImageFormat::encoded, 0, 0}};
    const int fds[] = {mfd.get()};
    send_frame(fd.get(), encode_message(g), fds);
    std::string text;
    for (;;) {
      Message m = recv_msg(fd.get(), r);
      if (auto* t = std::get_if<Token>(&m)) text += t->text;
      else if (auto* d = std::get_if<Done>(&m)) {
        REQUIRE(d->id == 5);
        break;
      } else FAIL("unexpected " << message_type(m));
    }
    REQUIRE(text == "t0t1t2");
    REQUIRE(server.images_ok == 1);
    // schema error: reply addressed to the request id, connection stays open
    Generate bad = g;
    bad.id = 6;
    bad.images.clear();
    bad.max_tokens = 0;
    send_frame(fd.get(), encode_message(bad));
    auto e = std::get<ErrorMsg>(recv_msg(fd.get(), r));
    REQUIRE(e.id == 6);
    REQUIRE(e.code == ErrorCode::bad_message);
    // framing error: error{0, too_large}, then the server closes
    const uint8_t absurd[] = {0xff, 0xff, 0xff, 0xff};
    send_frame(fd.get(), absurd);
    auto e2 = std::get<ErrorMsg>(recv_msg(fd.get(), r));
    REQUIRE(e2.id == 0);
    REQUIRE(e2.code == ErrorCode::too_large);
    bool eof = false;
    try {
      (void)recv_frame(fd.get(), r, 3000);
    } catch (const IpcError& x) {
      eof = x.code() == ErrorCode::unavailable;
    }
    REQUIRE(eof);
    for (int i = 0; i < 100 && server.closed.load() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(server.closed.load() == 1);
  }
  REQUIRE(omni_test::count_open_fds() == before);
}

TEST_CASE("AsioConnection: client disconnect is reported once - too many fds closes the stream") {
  omni_test::TempDir dir;
  MiniServer server(dir.path + "/s.sock");
  {
    auto fd = connect_unix(server.path);
    send_frame(fd.get(), encode_message(Hello{}));
    FrameReader r;
    REQUIRE(std::holds_alternative<HelloOk>(recv_msg(fd.get(), r)));
  }
  for (int i = 0; i < 200 && server.closed.load() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(server.closed.load() == 1);
  {
    auto fd = connect_unix(server.path);
    std::vector<UniqueFd> own;
    std::vector<int> fds;
    for (int i = 0; i < 12; ++i) {
      own.emplace_back(::dup(0));
      fds.push_back(own.back().get());
    }
    send_frame(fd.get(), encode_message(Hello{}), fds);
    FrameReader r;
    auto e = std::get<ErrorMsg>(recv_msg(fd.get(), r));
    REQUIRE(e.code == ErrorCode::too_large);
  }
  for (int i = 0; i < 200 && server.closed.load() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(server.closed.load() == 2);
}
