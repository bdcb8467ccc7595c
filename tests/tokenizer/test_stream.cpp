// Streaming decode never emits half a character and adds up to decode().
#include <catch2/catch.hpp>

#include <filesystem>

#include "tokenizer/byte_level.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

using omni::tok::StreamDecoder;
using omni::tok::Tokenizer;

namespace {
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (!n || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}
}  // namespace

TEST_CASE("stream decoder holds back incomplete UTF-8") {
  const std::string dir = std::string(OMNI_TEST_CACHE) + "/qwen3";
  if (!std::filesystem::exists(dir + "/tokenizer.json")) FAIL(dir + "/tokenizer.json is missing: run scripts/fetch_test_data.sh");
  const auto tok = Tokenizer::load(dir);
  const std::string text = "emoji 👨‍👩‍👧‍👦 and 漢字テキスト ünïcödé 🙂🙂 <|im_end|> done";
  const auto ids = tok.encode(text);
  StreamDecoder sd(tok);
  std::string all;
  bool split_seen = false;  // some token must end inside a character, or the test proves nothing
  for (int32_t id : ids) {
    const std::string piece = sd.push(id);
    CHECK(valid_utf8(piece));
    if (!valid_utf8(std::string(tok.token_bytes(id)))) split_seen = true;
    all += piece;
  }
  all += sd.finish();
  CHECK(split_seen);
  CHECK(all == text);
  CHECK(all == tok.decode(ids));

  // A character that never completes is flushed as U+FFFD by finish().
  StreamDecoder cut(tok);
  const auto lead = tok.token_id(omni::tok::bytes_to_byte_level("\xF0\x9F"));  // first half of an emoji
  REQUIRE(lead.has_value());
  CHECK(cut.push(*lead).empty());
  CHECK(cut.finish() == "\xEF\xBF\xBD");
  CHECK(cut.finish().empty());
}
