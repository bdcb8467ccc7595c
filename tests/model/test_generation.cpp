// The one generation state (model/generation.h): stop ids, stop strings that span token
// boundaries or end inside a multi-byte character, several stop strings at once, the
// hold-back of text that may begin a stop string, and max_tokens.
#include <catch2/catch.hpp>

#include "model/generation.h"
#include "tokenizer/tokenizer.h"
#include "util/golden.h"

using namespace omni;

namespace {

const tok::Tokenizer& tokenizer() {
  static const tok::Tokenizer t = tok::Tokenizer::load(test::data("minicpmv26-tiny"));
  return t;
}

struct Run {
  std::vector<std::string> pieces;   // what next()/push() handed out, in order
  std::string shown;
  FinishReason reason = FinishReason::none;
  size_t tokens = 0;
};

// Feeds `ids` one at a time (as a model would produce them) until the generation ends.
Run feed(const std::vector<int32_t>& ids, std::vector<std::string> stops, int max_tokens = 100,
         std::vector<int32_t> stop_ids = {}) {
  GenerationOptions o;
  o.max_tokens = max_tokens;
  o.stop_strings = std::move(stops);
  o.stop_ids = std::move(stop_ids);
  Generation g(&tokenizer(), o);
  Run r;
  for (int32_t id : ids) {
    std::string p = g.push(id);
    r.shown += p;
    if (!p.empty()) r.pieces.push_back(p);
    if (g.finished()) break;
  }
  if (!g.finished()) r.shown += g.end(FinishReason::length);
  r.reason = g.reason();
  r.tokens = g.tokens().size();
  CHECK(g.text() == r.shown);
  return r;
}

// Ids of `text` split so that every token holds at most a few bytes: byte-level tokens,
// so stop strings and characters really do cross token boundaries.
std::vector<int32_t> bytewise(const std::string& text) {
  std::vector<int32_t> ids;
  for (unsigned char c : text) {
    const std::vector<int32_t> one = tokenizer().encode(std::string(1, char(c)));
    if (one.size() == 1 && tokenizer().token_bytes(one[0]) == std::string(1, char(c))) {
      ids.push_back(one[0]);
      continue;
    }
    return tokenizer().encode(text);   // no byte tokens for this text: whole-text ids
  }
  return ids;
}

}  // namespace

TEST_CASE("a stop string spanning tokens ends the answer before it, and none of it is shown", "[generation]") {
  const auto ids = bytewise("Hello END world");
  REQUIRE(ids.size() > 10);
  Run r = feed(ids, {"END"});
  CHECK(r.shown == "Hello ");
  CHECK(r.reason == FinishReason::stop);
  // "E" and "EN" were held back, never shown and then taken back.
  for (const auto& p : r.pieces) CHECK(p.find('E') == std::string::npos);
}

TEST_CASE("held-back text is shown once it cannot be a stop string any more", "[generation]") {
  Run r = feed(bytewise("an ENd, then ENDING"), {"END"});
  CHECK(r.shown == "an ENd, then ");
  Run none = feed(bytewise("EN"), {"END"}, 100);   // the answer ends on a partial stop: shown
  CHECK(none.shown == "EN");
  CHECK(none.reason == FinishReason::length);
}

TEST_CASE("several stop strings: the earliest in the text wins", "[generation]") {
  CHECK(feed(bytewise("one two three"), {"three", "two"}).shown == "one ");
  CHECK(feed(bytewise("one two three"), {"o t", "three"}).shown == "one tw");
  CHECK(feed(bytewise("abc"), {"", "zz"}).shown == "abc");   // an empty stop string is ignored
}

TEST_CASE("stop strings and text with multi-byte characters", "[generation]") {
  // "é" is two bytes and "→" three: byte tokens end inside them, the stream decoder holds
  // them back until complete, and a stop string of such characters still matches.
  const std::string text = "caf\xC3\xA9 \xE2\x86\x92 ok";
  Run all = feed(bytewise(text), {});
  CHECK(all.shown == text);
  for (const auto& p : all.pieces) CHECK(p != "\xC3");   // never half a character
  CHECK(feed(bytewise(text), {"\xE2\x86\x92"}).shown == "caf\xC3\xA9 ");
  CHECK(feed(bytewise(text), {"\xC3\xA9 \xE2"}).shown == "caf");
}

TEST_CASE("a stop id ends the answer, counts as generated and adds no text", "[generation]") {
  const auto ids = tokenizer().encode("Hi there");
  const int32_t stop = 7;
  std::vector<int32_t> with_stop = ids;
  with_stop.push_back(stop);
  with_stop.push_back(ids.front());
  Run r = feed(with_stop, {}, 100, {stop});
  CHECK(r.shown == "Hi there");
  CHECK(r.reason == FinishReason::stop);
  CHECK(r.tokens == ids.size() + 1);
}

TEST_CASE("max_tokens ends the answer with reason length", "[generation]") {
  Run r = feed(bytewise("abcdef"), {}, 3);
  CHECK(r.shown == "abc");
  CHECK(r.reason == FinishReason::length);
  CHECK(r.tokens == 3);
  GenerationOptions o;
  o.max_tokens = 0;
  CHECK_THROWS_WITH(Generation(&tokenizer(), o), Catch::Contains("max_tokens"));
  o.max_tokens = 4;
  o.stop_strings = {"x"};
  CHECK_THROWS_WITH(Generation(nullptr, o), Catch::Contains("need a tokenizer"));
}

TEST_CASE("sampling from logits: greedy takes the largest", "[generation]") {
  GenerationOptions o;
  o.sampling.greedy = true;
  o.max_tokens = 2;
  Generation g(&tokenizer(), o);
  std::vector<float> logits(64, 0.0f);
  logits[42] = 5.0f;
  g.next(logits.data(), 64);
  CHECK(g.last_token() == 42);
  CHECK_FALSE(g.finished());
  g.next(logits.data(), 64);
  CHECK(g.finished());
  CHECK_THROWS(g.next(logits.data(), 64));
}
