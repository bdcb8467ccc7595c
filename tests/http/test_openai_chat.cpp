// The chat-completions body reader alone (daemon/server/openai_chat.h): what each
// OpenAI field and MiniCPM-V extra becomes in the scheduler's request, and the defaults.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "server/http_errors.h"
#include "server/openai_chat.h"

using namespace omni;
using json = nlohmann::json;

namespace {

server::ChatContext context() {
  server::ChatContext c;
  c.model_name = "tiny";
  c.default_sampling.temperature = 0.7f;
  c.limits.max_new_tokens = 4000;
  return c;
}

json hello() { return {{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}}; }

}  // namespace

TEST_CASE("chat completion bodies become scheduler requests") {
  const auto ctx = context();
  SECTION("defaults") {
    const auto c = server::parse_chat_completion(hello().dump(), ctx);
    CHECK_FALSE(c.stream);
    // No max_tokens: what the context leaves, up to max_new_tokens (cut by the engine).
    CHECK(c.request.options.max_tokens == int(ctx.limits.max_new_tokens));
    CHECK(c.request.options.max_tokens_fits_context);
    CHECK(c.request.options.sampling.temperature == Approx(0.7));   // the model's, not OpenAI's 1
    REQUIRE(c.request.messages.size() == 1);
    CHECK(c.request.messages[0].parts[0].text == "Hi");
    CHECK_FALSE(c.request.prompt.max_slice_nums);
  }
  SECTION("every field") {
    json b = hello();
    b["model"] = "tiny";
    b["stream"] = true;
    b["stream_options"] = {{"include_usage", true}};
    b["max_tokens"] = 10;
    b["max_completion_tokens"] = 20;
    b["temperature"] = 0;
    b["stop"] = "END";
    b["seed"] = 7;
    b["n"] = 1;
    b["user"] = "ignored";
    b["max_slice_nums"] = 4;
    b["use_image_id"] = false;
    b["enable_thinking"] = true;
    b["frequency_penalty"] = 0;
    const auto c = server::parse_chat_completion(b.dump(), ctx);
    CHECK(c.stream);
    CHECK(c.include_usage);
    CHECK(c.request.options.max_tokens == 20);   // the newer name wins
    CHECK(c.request.options.sampling.greedy);    // temperature 0
    CHECK(c.request.options.stop_strings == std::vector<std::string>{"END"});
    CHECK(c.request.options.sampling.seed == 7);
    CHECK(*c.request.prompt.max_slice_nums == 4);
    CHECK(*c.request.prompt.use_image_id == false);
    CHECK(*c.request.prompt.enable_thinking == true);
  }
  SECTION("a video_url part becomes a video attachment with the video settings") {
    json b;
    b["messages"] = json::array({{{"role", "user"},
                                  {"content", json::array({{{"type", "video_url"},
                                                            {"video_url", {{"url", "data:video/mp4;base64,AAAAIGZ0eXA="}}}},
                                                           {{"type", "text"}, {"text", "What happens?"}}})}}});
    b["video_fps"] = 2;
    b["video_max_frames"] = 16;
    b["video_max_packing"] = 2;
    b["video_max_slice_nums"] = 1;
    const auto c = server::parse_chat_completion(b.dump(), ctx);
    REQUIRE(c.request.images.size() == 1);
    CHECK(c.request.images[0].video);
    CHECK(c.request.images[0].size == 8);
    CHECK(c.request.messages[0].parts[0].video);
    CHECK(*c.request.prompt.video_fps == 2.0);
    CHECK(*c.request.prompt.video_max_frames == 16u);
    CHECK(*c.request.prompt.video_max_packing == 2u);
    CHECK(*c.request.prompt.video_max_slice_nums == 1u);
    b["video_max_packing"] = 7;
    CHECK_THROWS_AS(server::parse_chat_completion(b.dump(), ctx), server::HttpFailure);
  }
  SECTION("a small context caps the default") {
    auto small = ctx;
    small.limits.max_new_tokens = 48;
    CHECK(server::parse_chat_completion(hello().dump(), small).request.options.max_tokens == 48);
  }
  SECTION("refusals name the field") {
    auto refused = [&](json b, const std::string& field) {
      try {
        server::parse_chat_completion(b.dump(), ctx);
        FAIL("accepted: " << b.dump());
      } catch (const server::HttpFailure& f) {
        INFO(f.error().message);
        CHECK(f.error().message.find(field) != std::string::npos);
        return f.error().status;
      }
      return 0;
    };
    json b = hello();
    b["top_p"] = 0;
    CHECK(refused(b, "top_p") == 400);
    b = hello();
    b["max_slice_nums"] = 65;
    CHECK(refused(b, "max_slice_nums") == 400);
    b = hello();
    b["stream"] = "yes";
    CHECK(refused(b, "stream") == 400);
    b = hello();
    b["logprobs"] = true;
    CHECK(refused(b, "logprobs") == 400);
    b = hello();
    b["presence_penalty"] = 0.5;
    CHECK(refused(b, "presence_penalty") == 400);
    b = hello();
    b["max_tokens"] = 1.5;
    CHECK(refused(b, "max_tokens") == 400);
    CHECK(refused(json::parse(std::string(40, '[') + std::string(40, ']')), "nests") == 400);
    b = hello();
    b["model"] = "gpt-4o";
    CHECK(refused(b, "gpt-4o") == 404);
  }
}

TEST_CASE("error codes map to HTTP statuses in one table") {
  using C = ipc::ErrorCode;
  using server::HttpError;
  CHECK(HttpError::from_code(C::bad_message, "").status == 400);
  CHECK(HttpError::from_code(C::bad_frame, "").status == 400);
  CHECK(HttpError::from_code(C::bad_image, "").status == 400);
  CHECK(HttpError::from_code(C::too_large, "").status == 413);
  CHECK(HttpError::from_code(C::not_allowed, "").status == 401);
  CHECK(HttpError::from_code(C::busy, "").status == 429);
  CHECK(HttpError::from_code(C::not_ready, "").status == 503);
  CHECK(HttpError::from_code(C::internal, "").status == 500);
  const json body = json::parse(HttpError::from_code(C::too_large, "big").body());
  CHECK(body == json{{"error", {{"message", "big"}, {"type", "invalid_request_error"}, {"code", "too_large"}}}});
}
