#include "model/sha256.h"

#include <openssl/evp.h>

#include "util/error.h"

namespace omni {

std::string to_hex(const Sha256& d) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (uint8_t b : d) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

std::string sha256_hex(const uint8_t* data, size_t size) { return to_hex(sha256(data, size)); }

Sha256 sha256(const uint8_t* data, size_t size) {
  Sha256 out{};
  unsigned int len = 0;
  if (EVP_Digest(data, size, out.data(), &len, EVP_sha256(), nullptr) != 1 || len != out.size())
    throw Error("SHA-256 failed");
  return out;
}

struct Sha256Stream::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256Stream::Sha256Stream() : ctx_(std::make_unique<Ctx>()) {
  if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) throw Error("SHA-256 failed");
}
Sha256Stream::~Sha256Stream() = default;

void Sha256Stream::update(const uint8_t* data, size_t size) {
  if (EVP_DigestUpdate(ctx_->md, data, size) != 1) throw Error("SHA-256 failed");
}

Sha256 Sha256Stream::finish() {
  Sha256 out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, out.data(), &len) != 1 || len != out.size()) throw Error("SHA-256 failed");
  return out;
}

}  // namespace omni
