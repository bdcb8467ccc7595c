// The official OpenAI JavaScript client (npm "openai", fetched by scripts/fetch_test_data.sh)
// against `omnid serve --http` on the shapes demo model: asked about a committed picture
// at temperature 0, plainly and streamed, it must get exactly what `omnid run --greedy`
// prints for the same picture and question; a second turn (the picture, its answer, a
// new question) must get what `omni ask --messages` gets for the same turns over the Unix
// socket. Skipped (never passed) without node or the package.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdio>
#include <fstream>

#include "cli/run_command.h"
#include "http_test_util.h"
#include "util/skip.h"

using json = nlohmann::json;

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// stdout of a shell command, trimmed; rc its exit status.
std::string run(const std::string& cmd, int& rc) {
  const auto r = omni::test::run_command(cmd);
  rc = r.exit_code;
  return omni::test::trimmed(r.out);
}

using omni::test::shell_quote;

}  // namespace

TEST_CASE("the OpenAI JavaScript client gets what omnid run prints from the shapes model") {
  const std::string data = std::string(OMNI_TEST_DATA) + "/shapes";
  const std::string model = std::string(OMNI_TEST_DATA) + "/../../models/shapes";
  const std::string script = std::string(OMNI_TEST_DATA) + "/../http/openai_client.mjs";
  const std::string package = std::string(OMNI_TEST_CACHE) + "/openai";
  const std::string bin = std::string(OMNI_BIN_DIR) + "/omnid";
  REQUIRE(exists(model + "/model.safetensors"));
  int rc = 0;
  if (run("command -v node", rc).empty() || rc != 0) OMNI_SKIP("node is not installed");
  if (!exists(package + "/node_modules/openai/package.json"))
    OMNI_SKIP("the openai npm package is not in " << package << " (scripts/fetch_test_data.sh fetches it)");

  std::ifstream in(data + "/cases.json");
  const json cases = json::parse(in);
  const json& c = cases.at(0);
  const std::string picture = data + "/" + c.at("image").get<std::string>();
  const std::string question = c.at("question").get<std::string>();
  const std::string follow_up = "What colour is the shape?";

  const std::string expected = run("OMNI_LOG_LEVEL=warn " + shell_quote(bin) + " run --model " + shell_quote(model) + " --image " +
                                       shell_quote(picture) + " --greedy --max-tokens 16 " + shell_quote(question),
                                   rc);
  REQUIRE(rc == 0);
  REQUIRE(!expected.empty());

  omni::test::HttpDaemon d({}, model);
  const std::string cmd = "OMNI_OPENAI_DIR=" + shell_quote(package) + " OMNI_BASE_URL=http://127.0.0.1:" +
                          std::to_string(d.port()) + "/v1 node " + shell_quote(script) + " " + shell_quote(picture) + " " +
                          shell_quote(question) + " " + shell_quote(follow_up);
  const auto node = omni::test::run_command(cmd);
  const std::string out = omni::test::trimmed(node.out);
  INFO("node said: " << out << node.err);
  REQUIRE(node.exit_code == 0);
  const json got = json::parse(out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1));
  INFO("omnid run: '" << expected << "'");
  CHECK(got["object"] == "chat.completion");
  CHECK(got["plain"] == expected);
  CHECK(got["streamed"] == expected);
  CHECK(got["stream_role"] == "assistant");
  CHECK((got["plain_finish"] == "stop" || got["plain_finish"] == "length"));
  CHECK(got["stream_finish"] == got["plain_finish"]);
  CHECK(got["chunks"].get<int>() >= 3);
  REQUIRE(got["usage"].is_object());
  CHECK(got["usage"] == got["plain_usage"]);
  CHECK(got["usage"]["prompt_tokens"].get<int>() > 0);
  CHECK(got["two_turn"].is_string());

  // The same two turns through `omni ask --messages` over the Unix socket (the picture
  // as a file:// URL).
  const std::string first_answer = got["plain"];
  const json messages = json::array(
      {{{"role", "user"},
        {"content", json::array({{{"type", "image_url"}, {"image_url", {{"url", "file://" + picture}}}},
                                 {{"type", "text"}, {"text", question}}})}},
       {{"role", "assistant"}, {"content", first_answer}},
       {{"role", "user"}, {"content", follow_up}}});
  const std::string out_dir = std::string(OMNI_BIN_DIR) + "/../tests/http";
  std::filesystem::create_directories(out_dir);
  std::ofstream(out_dir + "/two_turn_messages.json") << messages.dump(1) << "\n";
  const std::string ask = run(shell_quote(std::string(OMNI_BIN_DIR) + "/omni") + " ask --socket " + shell_quote(d.socket()) +
                                  " --messages " + shell_quote(out_dir + "/two_turn_messages.json") +
                                  " --greedy --max-tokens 16",
                              rc);
  REQUIRE(rc == 0);
  CHECK(got["two_turn"].get<std::string>() == ask);
}
