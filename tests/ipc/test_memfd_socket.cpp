#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "ipc/memfd.h"
#include "ipc/messages.h"
#include "ipc/socket.h"
#include "ipc_test_util.h"

using namespace omni::ipc;

namespace {
ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const IpcError& e) {
    return e.code();
  }
  return ErrorCode::ok;
}
std::vector<uint8_t> pattern(std::size_t n) {
  std::vector<uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7 + 3);
  return v;
}
}  // namespace

TEST_CASE("sealed memfd maps read-only with the right bytes") {
  auto data = pattern(10000);
  auto fd = make_sealed_memfd(data);
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  REQUIRE((seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)) ==
          (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL));
  REQUIRE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC);
  auto m = map_sealed_image(fd.get(), data.size(), Limits{});
  REQUIRE(m.size() == data.size());
  REQUIRE(std::memcmp(m.data(), data.data(), data.size()) == 0);
  // writing is impossible now
  REQUIRE(::ftruncate(fd.get(), 10) != 0);
  REQUIRE(::write(fd.get(), "x", 1) < 0);
}

TEST_CASE("MemfdWriter fills in place then seals") {
  MemfdWriter w(4096);
  std::memset(w.data(), 0xab, w.size());
  auto fd = w.seal();
  auto m = map_sealed_image(fd.get(), 4096, Limits{});
  REQUIRE(m.data()[4095] == 0xab);
}

TEST_CASE("unsealed, shrinkable, wrong-size and non-memfd descriptors are refused") {
  const int before = omni_test::count_open_fds();
  {
    UniqueFd unsealed(::memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    REQUIRE(::ftruncate(unsealed.get(), 100) == 0);
    REQUIRE(code_of([&] { map_sealed_image(unsealed.get(), 100, Limits{}); }) == ErrorCode::bad_image);

    UniqueFd shrinkable(::memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    REQUIRE(::ftruncate(shrinkable.get(), 100) == 0);
    REQUIRE(::fcntl(shrinkable.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW) == 0);
    REQUIRE(code_of([&] { map_sealed_image(shrinkable.get(), 100, Limits{}); }) == ErrorCode::bad_image);

    UniqueFd writable(::memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    REQUIRE(::ftruncate(writable.get(), 100) == 0);
    REQUIRE(::fcntl(writable.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    REQUIRE(code_of([&] { map_sealed_image(writable.get(), 100, Limits{}); }) == ErrorCode::bad_image);

    auto good = make_sealed_memfd(pattern(100));
    REQUIRE(code_of([&] { map_sealed_image(good.get(), 99, Limits{}); }) == ErrorCode::bad_image);
    REQUIRE(code_of([&] { map_sealed_image(good.get(), 101, Limits{}); }) == ErrorCode::bad_image);
    Limits tiny;
    tiny.max_image_bytes = 50;
    REQUIRE(code_of([&] { map_sealed_image(good.get(), 100, tiny); }) == ErrorCode::too_large);

    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    UniqueFd r(p[0]), w(p[1]);
    REQUIRE(code_of([&] { map_sealed_image(r.get(), 1, Limits{}); }) == ErrorCode::bad_image);
    UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(code_of([&] { map_sealed_image(devnull.get(), 1, Limits{}); }) == ErrorCode::bad_image);
  }
  REQUIRE(omni_test::count_open_fds() == before);
}

TEST_CASE("frames with descriptors travel over a socketpair") {
  const int before = omni_test::count_open_fds();
  {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd a(sv[0]), b(sv[1]);
    auto img = pattern(5000);
    auto mfd = make_sealed_memfd(img);
    Generate g;
    g.id = 77;
    g.prompt = "describe";
    g.images = {ImageRef{0, img.size(), ImageFormat::encoded, 0, 0}};
    const int fds[] = {mfd.get()};
    send_frame(a.get(), encode_message(Cancel{1}));
    send_frame(a.get(), encode_message(g), fds);
    send_frame(a.get(), encode_message(Cancel{2}));
    FrameReader r;
    auto f1 = recv_frame(b.get(), r, 1000);
    REQUIRE(std::get<Cancel>(decode_message(f1, r.limits())).id == 1);
    auto f2 = recv_frame(b.get(), r, 1000);
    REQUIRE(f2.fds.size() == 1);
    REQUIRE(::fcntl(f2.fds[0].get(), F_GETFD) & FD_CLOEXEC);
    auto gm = std::get<Generate>(decode_message(f2, r.limits()));
    auto m = map_sealed_image(f2.fds[gm.images[0].fd_index].get(), gm.images[0].size, r.limits());
    REQUIRE(std::memcmp(m.data(), img.data(), img.size()) == 0);
    auto f3 = recv_frame(b.get(), r, 1000);
    REQUIRE(f3.fds.empty());
    REQUIRE(std::get<Cancel>(decode_message(f3, r.limits())).id == 2);
  }
  REQUIRE(omni_test::count_open_fds() == before);
}

TEST_CASE("too many descriptors: MSG_CTRUNC is an error and nothing leaks") {
  const int before = omni_test::count_open_fds();
  {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd a(sv[0]), b(sv[1]);
    std::vector<UniqueFd> owned;
    std::vector<int> fds;
    for (int i = 0; i < 20; ++i) {
      owned.emplace_back(::dup(0));
      fds.push_back(owned.back().get());
    }
    send_frame(a.get(), encode_message(Cancel{1}), fds);
    Limits L;
    L.max_fds_per_frame = 4;
    FrameReader r(L);
    REQUIRE(code_of([&] { (void)recv_frame(b.get(), r, 1000); }) == ErrorCode::too_large);
  }
  REQUIRE(omni_test::count_open_fds() == before);
}

TEST_CASE("descriptors on a frame that must not carry them are closed with the frame") {
  const int before = omni_test::count_open_fds();
  {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd a(sv[0]), b(sv[1]);
    auto mfd = make_sealed_memfd(pattern(10));
    const int fds[] = {mfd.get(), mfd.get()};
    send_frame(a.get(), encode_message(StatusRequest{1}), fds);
    FrameReader r;
    auto f = recv_frame(b.get(), r, 1000);
    REQUIRE(f.fds.size() == 2);
    REQUIRE(code_of([&] { (void)decode_message(f, r.limits()); }) == ErrorCode::bad_message);
  }
  REQUIRE(omni_test::count_open_fds() == before);
}

TEST_CASE("EOF and peer reset surface as unavailable") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  UniqueFd a(sv[0]), b(sv[1]);
  a.reset();
  FrameReader r;
  REQUIRE(code_of([&] { (void)recv_frame(b.get(), r, 1000); }) == ErrorCode::unavailable);
  REQUIRE(code_of([&] { send_frame(b.get(), encode_message(Cancel{1})); }) == ErrorCode::unavailable);
}

TEST_CASE("listen_unix: mode 0660, stale socket removed, live socket and regular file refused") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  {
    auto l = listen_unix(path);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    REQUIRE(S_ISSOCK(st.st_mode));
    REQUIRE((st.st_mode & 0777) == 0660);
    // a second server on a live socket: busy
    REQUIRE(code_of([&] { (void)listen_unix(path); }) == ErrorCode::busy);
    // peer credentials through a real connection
    auto c = connect_unix(path);
    auto s = accept_unix(l.get());
    REQUIRE(s);
    auto cred = peer_credentials(s.get());
    REQUIRE(cred.pid == ::getpid());
    REQUIRE(cred.uid == ::getuid());
    AccessPolicy open;
    REQUIRE(open.allows(cred));
    AccessPolicy other;
    other.uids = {cred.uid};
    REQUIRE(other.allows(cred));
    PeerCred stranger{1, 54321, 54321};
    AccessPolicy strict;
    strict.uids = {12345};
    REQUIRE_FALSE(strict.allows(stranger));
    strict.gids = {54321};
    REQUIRE(strict.allows(stranger));
  }
  // the listener is closed but the file stays: stale, must be replaced
  auto l2 = listen_unix(path);
  REQUIRE(l2);
  l2.reset();
  ::unlink(path.c_str());
  const std::string file = dir.path + "/not-a-socket";
  { UniqueFd f(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)); }
  REQUIRE(code_of([&] { (void)listen_unix(file); }) == ErrorCode::not_allowed);
  REQUIRE(std::filesystem::exists(file));
  REQUIRE(code_of([&] { (void)connect_unix(dir.path + "/nobody.sock"); }) == ErrorCode::unavailable);
  REQUIRE(code_of([&] { (void)listen_unix(dir.path + "/missing/x.sock"); }) == ErrorCode::not_allowed);
}
