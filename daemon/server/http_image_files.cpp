#include "server/http_image_files.h"

#include <fcntl.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "server/http_errors.h"

namespace omni::server {

namespace {

using ipc::ErrorCode;

[[noreturn]] void fail(ErrorCode code, const std::string& message) {
  throw HttpFailure(HttpError::from_code(code, message));
}

std::string canonical(const std::string& path) {
  std::unique_ptr<char, decltype(&::free)> r(::realpath(path.c_str(), nullptr), &::free);
  return r ? std::string(r.get()) : std::string();
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}

// file:///a/b%20c -> /a/b c; empty when it is not a local file URL.
std::string file_url_path(const std::string& url) {
  std::string rest = url.substr(7);   // after "file://"
  if (lower(rest.substr(0, 9)) == "localhost") rest = rest.substr(9);
  if (rest.empty() || rest[0] != '/') return {};   // file://otherhost/...
  std::string out;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '%' && i + 2 < rest.size() && hex(rest[i + 1]) >= 0 && hex(rest[i + 2]) >= 0) {
      out += char(hex(rest[i + 1]) * 16 + hex(rest[i + 2]));
      i += 2;
    } else if (rest[i] == '?' || rest[i] == '#') {
      break;
    } else {
      out += rest[i];
    }
  }
  if (out.find('\0') != std::string::npos) return {};
  return out;
}

}  // namespace

ImageDirs::ImageDirs(const std::vector<std::string>& dirs) {
  for (const auto& d : dirs) {
    std::string c = canonical(d);
    struct stat st {};
    if (c.empty() || ::stat(c.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      spdlog::warn("allowed_image_dirs: {} is not a folder; no pictures are read from it", d);
      continue;
    }
    while (c.size() > 1 && c.back() == '/') c.pop_back();
    dirs_.push_back(c);
  }
}

bool ImageDirs::contains(const std::string& path) const {
  for (const auto& d : dirs_) {
    if (d == "/") return true;
    if (path.size() > d.size() && path.compare(0, d.size(), d) == 0 && path[d.size()] == '/') return true;
  }
  return false;
}

std::vector<uint8_t> ImageDirs::read(const std::string& url, uint64_t max_bytes, const std::string& where) const {
  const std::string scheme = lower(url.substr(0, url.find(':') == std::string::npos ? 0 : url.find(':') + 1));
  if (scheme == "http:" || scheme == "https:")
    fail(ErrorCode::bad_message, where + ": not fetched: this server reads data: URLs and file:// under allowed_image_dirs");
  if (lower(url.substr(0, 7)) != "file://")
    fail(ErrorCode::bad_message, where + ": expected a data: URL or a file:// URL");
  if (dirs_.empty())
    fail(ErrorCode::bad_message, where + ": file:// pictures are not read: the daemon has no allowed_image_dirs");
  const std::string path = file_url_path(url);
  if (path.empty()) fail(ErrorCode::bad_message, where + ": expected file:///absolute/path");
  const std::string real = canonical(path);
  if (real.empty()) fail(ErrorCode::bad_image, where + ": " + path + ": " + std::strerror(errno));
  if (!contains(real)) fail(ErrorCode::bad_message, where + ": " + path + " is not under allowed_image_dirs");
  // O_NONBLOCK: a FIFO planted there must not hang the I/O thread in open().
  const int fd = ::open(real.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(ErrorCode::bad_image, where + ": " + path + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  // What was opened, whatever happened to the path since realpath(): checked again.
  char link[PATH_MAX + 1];
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(self.c_str(), link, PATH_MAX);
  if (n <= 0 || !contains(std::string(link, size_t(n))))
    fail(ErrorCode::bad_message, where + ": " + path + " is not under allowed_image_dirs");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    fail(ErrorCode::bad_image, where + ": " + path + " is not a regular file");
  if (uint64_t(st.st_size) > max_bytes)
    fail(ErrorCode::too_large, where + ": " + path + " has " + std::to_string(st.st_size) +
                                   " bytes, more than the limit of " + std::to_string(max_bytes));
  if (st.st_size == 0) fail(ErrorCode::bad_image, where + ": " + path + " is empty");
  std::vector<uint8_t> bytes(size_t(st.st_size));
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t r = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) fail(ErrorCode::bad_image, where + ": " + path + ": read failed");
    got += size_t(r);
  }
  return bytes;
}

}  // namespace omni::server
