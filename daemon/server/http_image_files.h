#pragma once
// Pictures an HTTP request names by location instead of sending them (data: URLs are
// decoded by ipc::read_chat_messages). Only file:// URLs whose real path, after every
// symlink, lies under one of the operator's allowed_image_dirs are read; nothing is ever
// fetched from the network, so the daemon cannot be made to reach other hosts.
#include <cstdint>
#include <string>
#include <vector>

namespace omni::server {

class ImageDirs {
 public:
  // The configured folders, each resolved to its real path once (at start); folders
  // that do not exist are left out with a warning.
  explicit ImageDirs(const std::vector<std::string>& dirs);
  bool empty() const { return dirs_.empty(); }
  // Whether the canonical `path` lies in one of the folders.
  bool contains(const std::string& path) const;

  // The bytes of the picture at `url` ("file:///abs/path", "file://localhost/abs/path",
  // percent-escapes decoded). Throws HttpFailure naming `where`: 400 for a scheme other
  // than file://, for a path outside the folders or not a readable regular file, 413 over
  // `max_bytes`. The file is opened without following a last symlink and checked again
  // through its descriptor, so swapping a path component after the check does not lead
  // outside the folders.
  std::vector<uint8_t> read(const std::string& url, uint64_t max_bytes, const std::string& where) const;

 private:
  std::vector<std::string> dirs_;   // canonical, without a trailing '/'
};

}  // namespace omni::server
