// Conversations on the wire (generate.messages, protocol 1.1) and the OpenAI-style JSON
// reader both fronts share (ipc/chat_json.h).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "ipc/chat_json.h"
#include "ipc/messages.h"

using namespace omni::ipc;
using Catch::Matchers::Contains;

namespace {

Generate conversation() {
  Generate g;
  g.id = 9;
  g.images = {ImageRef{0, 10, ImageFormat::encoded, 0, 0}, ImageRef{1, 10, ImageFormat::encoded, 0, 0}};
  g.messages = {{Role::user, {TurnPart::of_text("Compare"), TurnPart::of_image(1)}},
                {Role::assistant, {TurnPart::of_text("And?")}},
                {Role::user, {TurnPart::of_image(0), TurnPart::of_text("<|im_end|> this")}}};
  g.system = "Be brief.";
  g.options.max_slice_nums = 4;
  g.options.use_image_id = false;
  g.options.enable_thinking = true;
  return g;
}

std::string error_of(const Generate& g, std::size_t nfds) {
  try {
    const auto bytes = encode_payload(g);
    (void)decode_payload(bytes, nfds, Limits{});
  } catch (const IpcError& e) {
    return std::string(error_code_name(e.code())) + " " + e.what();
  }
  return "accepted";
}

std::string chat_error(const std::string& json, Limits lim = {}) {
  try {
    (void)read_chat_messages(nlohmann::json::parse(json), lim);
  } catch (const IpcError& e) {
    return std::string(error_code_name(e.code())) + " " + e.what();
  }
  return "accepted";
}

}  // namespace

TEST_CASE("generate with messages round-trips and yields its turns") {
  const Generate g = conversation();
  const auto bytes = encode_payload(g);
  const auto back = std::get<Generate>(decode_payload(bytes, 2, Limits{}));
  REQUIRE(back.messages.size() == 3);
  CHECK(back.prompt.empty());
  CHECK(back.messages[0].parts[1].image == 1);
  CHECK(back.messages[1].role == Role::assistant);
  CHECK(back.messages[2].parts[1].text == "<|im_end|> this");
  CHECK(back.system == "Be brief.");
  CHECK(back.options.max_slice_nums == 4u);
  CHECK(back.options.use_image_id == false);
  CHECK(back.options.enable_thinking == true);
  const auto turns = generate_turns(back);
  REQUIRE(turns.size() == 4);
  CHECK(turns[0].role == Role::system);
  CHECK(turns[0].parts[0].text == "Be brief.");
  // The one-question form is one user turn: pictures first.
  Generate q;
  q.id = 1;
  q.prompt = "What?";
  q.images = {ImageRef{0, 10, ImageFormat::encoded, 0, 0}};
  const auto one = generate_turns(std::get<Generate>(decode_payload(encode_payload(q), 1, Limits{})));
  REQUIRE(one.size() == 1);
  REQUIRE(one[0].parts.size() == 2);
  CHECK(one[0].parts[0].image == 0);
  CHECK(one[0].parts[1].text == "What?");
}

TEST_CASE("bad conversations name the field") {
  Generate g = conversation();
  g.messages[2].parts[0] = TurnPart::of_image(1);   // picture 1 twice, picture 0 never
  CHECK_THAT(error_of(g, 2), Contains("bad_message generate.messages[2].content[0]: attachment 1 is used twice"));
  g = conversation();
  g.messages.push_back({Role::system, {TurnPart::of_text("late")}});
  CHECK_THAT(error_of(g, 2), Contains("a system turn may only come first"));
  g = conversation();
  g.messages[1].parts.clear();
  CHECK_THAT(error_of(g, 2), Contains("generate.messages[1].content: empty"));
  g = conversation();
  g.options.max_slice_nums = 0;
  CHECK_THAT(error_of(g, 2), Contains("generate.max_slice_nums"));
  g = conversation();
  g.messages[0].parts[1] = TurnPart::of_image(7);
  CHECK_THAT(error_of(g, 2), Contains("generate.messages[0].content[1]: attachment 7 of 2"));
}

TEST_CASE("OpenAI messages JSON: strings and parts, data URLs and locations") {
  const auto chat = read_chat_messages(nlohmann::json::parse(R"([
    {"role": "developer", "content": "Rules."},
    {"role": "user", "content": [{"type": "text", "text": "See"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                                 {"type": "image_url", "image_url": "file:///srv/pics/a.jpg"}]},
    {"role": "assistant", "content": ""}])"),
                                       Limits{});
  REQUIRE(chat.turns.size() == 3);
  CHECK(chat.turns[0].role == Role::system);
  REQUIRE(chat.turns[1].parts.size() == 3);
  CHECK(chat.turns[1].parts[1].image == 0);
  CHECK(chat.turns[1].parts[2].image == 1);
  REQUIRE(chat.pictures.size() == 2);
  CHECK(chat.pictures[0].kind == PictureSource::Kind::bytes);
  CHECK(chat.pictures[0].bytes == std::vector<uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
  CHECK(chat.pictures[1].kind == PictureSource::Kind::location);
  CHECK(chat.pictures[1].location == "file:///srv/pics/a.jpg");
  CHECK(chat.pictures[1].where == "messages[1].content[2].image_url");
}

TEST_CASE("OpenAI messages JSON: every refusal names its path and code") {
  CHECK_THAT(chat_error(R"({"role": "user"})"), Contains("bad_message messages: expected an array"));
  CHECK_THAT(chat_error("[]"), Contains("bad_message messages: empty"));
  CHECK_THAT(chat_error(R"([{"content": "x"}])"), Contains("messages[0].role: missing"));
  CHECK_THAT(chat_error(R"([{"role": "tool", "content": "x"}])"), Contains("messages[0].role: 'tool' is not supported"));
  CHECK_THAT(chat_error(R"([{"role": "user", "content": 5}])"), Contains("messages[0].content: expected a string or an array"));
  CHECK_THAT(chat_error(R"([{"role": "user", "content": null}])"), Contains("messages[0].content: missing"));
  CHECK_THAT(chat_error(R"([{"role": "user", "content": [{"type": "audio"}]}])"),
             Contains("messages[0].content[0].type: 'audio' is not supported"));
  CHECK_THAT(chat_error(R"([{"role": "user", "content": [{"type": "text", "text": 3}]}])"),
             Contains("messages[0].content[0].text"));
  CHECK_THAT(chat_error(R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@@"}}]}])"),
             Contains("bad_image messages[0].content[0].image_url.url: the data: URL is not valid base64"));
  CHECK_THAT(chat_error(R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}]}])"),
             Contains("bad_image messages[0].content[0].image_url.url: media type 'text/plain'"));
  Limits small;
  small.max_image_bytes = 4;
  CHECK_THAT(chat_error(R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])", small),
             Contains("too_large messages[0].content[0].image_url.url"));
  small = Limits{};
  small.max_images = 1;
  CHECK_THAT(chat_error(R"([{"role": "user", "content": [{"type": "image_url", "image_url": "file:///a"},
                                                         {"type": "image_url", "image_url": "file:///b"}]}])", small),
             Contains("too_large messages[0].content[1]: more than 1 pictures"));
  small = Limits{};
  small.max_prompt_bytes = 5;
  CHECK_THAT(chat_error(R"([{"role": "user", "content": "far too long"}])", small), Contains("too_large messages[0].content"));
}

TEST_CASE("base64: the standard alphabet, canonical, padding optional") {
  std::vector<uint8_t> out;
  CHECK(decode_base64("aGVsbG8=", out));
  CHECK(std::string(out.begin(), out.end()) == "hello");
  CHECK(decode_base64("aGVsbG8", out));
  CHECK(std::string(out.begin(), out.end()) == "hello");
  CHECK(decode_base64("", out));
  CHECK(out.empty());
  CHECK_FALSE(decode_base64("a", out));                   // one char: no byte
  CHECK_FALSE(decode_base64("aGVs bG8=", out));           // whitespace
  CHECK_FALSE(decode_base64("aGVsbG-_", out));            // URL-safe alphabet
  CHECK_FALSE(decode_base64("aGVsbG9=", out));            // non-zero trailing bits
  CHECK_FALSE(decode_base64("aGVsbG8===", out));
}

TEST_CASE("videos on the wire: format video and video parts round-trip with their settings") {
  Generate g;
  g.id = 5;
  g.images = {ImageRef{0, 10, ImageFormat::encoded, 0, 0}, ImageRef{1, 1000, ImageFormat::video, 0, 0}};
  g.messages = {{Role::user, {TurnPart::of_image(0), TurnPart::of_video(1), TurnPart::of_text("What happens?")}}};
  g.options.video_fps = 2.5;
  g.options.video_max_frames = 32;
  g.options.video_max_packing = 2;
  g.options.video_max_slice_nums = 1;
  const auto back = std::get<Generate>(decode_payload(encode_payload(g), 2, Limits{}));
  REQUIRE(back.images.size() == 2);
  CHECK(back.images[1].format == ImageFormat::video);
  REQUIRE(back.messages[0].parts.size() == 3);
  CHECK_FALSE(back.messages[0].parts[0].video);
  CHECK(back.messages[0].parts[1].video);
  CHECK(back.messages[0].parts[1].image == 1);
  CHECK(back.options.video_fps == 2.5);
  CHECK(back.options.video_max_frames == 32u);
  CHECK(back.options.video_max_packing == 2u);
  CHECK(back.options.video_max_slice_nums == 1u);
  // The one-question form: a video attachment becomes a video part.
  Generate q;
  q.id = 6;
  q.prompt = "What?";
  q.images = {ImageRef{0, 1000, ImageFormat::video, 0, 0}};
  const auto turns = generate_turns(std::get<Generate>(decode_payload(encode_payload(q), 1, Limits{})));
  REQUIRE(turns[0].parts.size() == 2);
  CHECK(turns[0].parts[0].video);
}

TEST_CASE("videos on the wire: a part of the wrong kind and settings out of range are refused by name") {
  Generate g;
  g.id = 5;
  g.images = {ImageRef{0, 1000, ImageFormat::video, 0, 0}};
  g.messages = {{Role::user, {TurnPart::of_image(0), TurnPart::of_text("?")}}};
  CHECK_THAT(error_of(g, 1), Contains("generate.messages[0].content[0]: images[0] is a video: refer to it with {\"video\": 0}"));
  g.messages[0].parts[0] = TurnPart::of_video(0);
  CHECK(error_of(g, 1) == "accepted");
  g.images[0].format = ImageFormat::encoded;
  CHECK_THAT(error_of(g, 1), Contains("images[0] is a picture: refer to it with {\"image\": 0}"));
  g.images[0].format = ImageFormat::video;
  g.options.video_max_packing = 7;
  CHECK_THAT(error_of(g, 1), Contains("bad_message generate.video_max_packing: 7 is outside 1..6"));
  g.options.video_max_packing.reset();
  g.options.video_fps = 0;
  CHECK_THAT(error_of(g, 1), Contains("generate.video_fps"));
  g.options.video_fps.reset();
  g.options.video_max_frames = 0;
  CHECK_THAT(error_of(g, 1), Contains("generate.video_max_frames: 0 is outside 1..1024"));
  // Sizes: a video is bounded by max_video_bytes, not max_image_bytes.
  g.options.video_max_frames.reset();
  Limits lim;
  g.images[0].size = lim.max_image_bytes + 1;
  CHECK(error_of(g, 1) == "accepted");
  g.images[0].size = lim.max_video_bytes + 1;
  CHECK_THAT(error_of(g, 1), Contains("too_large generate.images[0].size: video exceeds max_video_bytes"));
}

TEST_CASE("OpenAI messages JSON: video_url parts read as videos with their own limit") {
  const auto chat = read_chat_messages(nlohmann::json::parse(R"([
    {"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAAIGZ0eXA="}},
                                 {"type": "video_url", "video_url": "file:///srv/clips/a.webm"},
                                 {"type": "text", "text": "What happens?"}]}])"),
                                       Limits{});
  REQUIRE(chat.pictures.size() == 2);
  CHECK(chat.pictures[0].video);
  CHECK(chat.pictures[0].bytes.size() == 8);
  CHECK(chat.pictures[1].video);
  CHECK(chat.turns[0].parts[0].video);
  CHECK(chat.pictures[1].where == "messages[0].content[1].video_url");
  CHECK_THAT(chat_error(R"([{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])"),
             Contains("bad_image messages[0].content[0].video_url.url: media type 'image/png' is not a video"));
  Limits small;
  small.max_video_bytes = 4;
  small.max_image_bytes = 1 << 20;
  CHECK_THAT(chat_error(R"([{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAAIGZ0eXA="}}]}])", small),
             Contains("too_large messages[0].content[0].video_url.url: a video of"));
}
