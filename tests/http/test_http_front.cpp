// The OpenAI-compatible HTTP front of `omnid serve --http` (docs/http.md) against a raw
// HTTP client: every bad request gets its status and OpenAI error body naming the field,
// slow and departing clients are cut off and their requests freed, and the daemon goes
// on serving. The tiny MiniCPM-V fixture answers; its text is noise, its shapes are not.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <utility>
#include <boost/asio.hpp>

#include <filesystem>
#include <fstream>
#include <thread>

#include "http_test_util.h"
#include "server/http_front.h"
#include "server/server_config.h"

using namespace omni;
using namespace omni::test;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string kPicture = std::string(OMNI_TEST_DATA) + "/minicpmv26-tiny/case_small/image.png";

std::string picture_url() { return "data:image/png;base64," + base64(read_all(kPicture)); }

json picture_message(const std::string& url, const std::string& question = "Describe the colours.") {
  return {{"role", "user"},
          {"content", json::array({{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                                   {{"type", "text"}, {"text", question}}})}};
}

json text_request(int max_tokens = 4) {
  return {{"messages", json::array({{{"role", "user"}, {"content", "Tell me a story."}}})},
          {"max_tokens", max_tokens},
          {"temperature", 0}};
}

// The status and the OpenAI error object of a refusal; `field` must be named in the message.
void check_error(const HttpResponse& r, int status, const std::string& code, const std::string& field) {
  INFO("status " << r.status << " body " << r.body);
  REQUIRE(r.status == status);
  CHECK(r.header("content-type") == "application/json");
  const json j = json::parse(r.body);
  REQUIRE(j.contains("error"));
  CHECK(j["error"]["code"] == code);
  CHECK(j["error"]["type"].is_string());
  CHECK(j["error"]["message"].get<std::string>().find(field) != std::string::npos);
}

std::string key_file(const std::filesystem::path& dir, const std::string& key) {
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "api.key").string();
  std::ofstream(path) << key << "\n";
  ::chmod(path.c_str(), 0600);
  return path;
}

}  // namespace

TEST_CASE("http front refuses bad requests with OpenAI error bodies and serves on") {
  const auto keys = std::filesystem::temp_directory_path() / ("omnid-http-key-" + std::to_string(::getpid()));
  const std::string auth = "Authorization: Bearer sesame\r\n";
  HttpDaemon d({"--api-key-file", key_file(keys, "sesame"), "--http-max-body-bytes", "300000", "--http-header-timeout",
                "1", "--max-image-pixels", "1000"});
  const int port = d.port();
  auto post = [&](const std::string& body, const std::string& headers = "Authorization: Bearer sesame\r\n") {
    return http_call(port, "POST", "/v1/chat/completions", body, headers);
  };

  SECTION("keys") {
    check_error(post(text_request().dump(), ""), 401, "invalid_api_key", "API key");
    check_error(post(text_request().dump(), "Authorization: Bearer open-sesame\r\n"), 401, "invalid_api_key", "API key");
    check_error(http_call(port, "GET", "/v1/models"), 401, "invalid_api_key", "API key");
    check_error(http_call(port, "GET", "/metrics"), 401, "invalid_api_key", "API key");
    CHECK(http_call(port, "GET", "/health").status == 200);   // open: a probe needs no key
    CHECK(http_call(port, "GET", "/v1/models", "", auth).status == 200);
  }
  SECTION("bodies") {
    check_error(post("{\"messages\": [ {\"role\": "), 400, "bad_message", "JSON");
    check_error(post("[1, 2]"), 400, "bad_message", "object");
    json wrong = text_request();
    wrong["temperature"] = "hot";
    check_error(post(wrong.dump()), 400, "bad_message", "temperature");
    json noms = text_request();
    noms.erase("messages");
    check_error(post(noms.dump()), 400, "bad_message", "messages");
    json model = text_request();
    model["model"] = "gpt-4o";
    check_error(post(model.dump()), 404, "model_not_found", "gpt-4o");
    json two = text_request();
    two["n"] = 2;
    check_error(post(two.dump()), 400, "bad_message", "n:");
    json many = text_request();
    many["max_tokens"] = 1u << 30;
    check_error(post(many.dump()), 400, "bad_message", "max_tokens");
    json stop = text_request();
    stop["stop"] = json::array({"a", 3});
    check_error(post(stop.dump()), 400, "bad_message", "stop[1]");
    json tools = text_request();
    tools["tools"] = json::array({{{"type", "function"}}});
    check_error(post(tools.dump()), 400, "bad_message", "tools");
    json role = text_request();
    role["messages"][0]["role"] = "robot";
    check_error(post(role.dump()), 400, "bad_message", "messages[0].role");
  }
  SECTION("pictures") {
    json b64 = text_request();
    b64["messages"] = json::array({picture_message("data:image/png;base64,@@@@")});
    check_error(post(b64.dump()), 400, "bad_image", "messages[0].content[0].image_url.url");
    json web = text_request();
    web["messages"] = json::array({picture_message("https://example.com/cat.png")});
    check_error(post(web.dump()), 400, "bad_message", "not fetched");
    json file = text_request();
    file["messages"] = json::array({picture_message("file://" + kPicture)});
    check_error(post(file.dump()), 400, "bad_message", "allowed_image_dirs");
    // 90 x 60 pixels, over --max-image-pixels 1000: refused by the engine's decoder, not run.
    json big = text_request();
    big["messages"] = json::array({picture_message(picture_url())});
    check_error(post(big.dump()), 400, "bad_image", "pixels");
    // More pictures than the limit (8): refused before any is decoded.
    json nine = text_request();
    nine["messages"] = json::array();
    for (int i = 0; i < 9; ++i) nine["messages"].push_back(picture_message(picture_url()));
    check_error(post(nine.dump()), 413, "too_large", "pictures");
  }
  SECTION("transport") {
    // Over --http-max-body-bytes: refused from the Content-Length alone.
    const int fd = connect_port(port);
    send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n" + auth +
                     "Content-Type: application/json\r\nContent-Length: 400000\r\n\r\n{\"messages\":");
    check_error(parse_response(recv_until_eof(fd, 5000ms)), 413, "too_large", "http_max_body_bytes");
    ::close(fd);
    check_error(http_call(port, "GET", "/v1/completions", "", auth), 404, "not_found", "/v1/completions");
    const HttpResponse get = http_call(port, "GET", "/v1/chat/completions", "", auth);
    check_error(get, 405, "method_not_allowed", "POST");
    CHECK(get.header("allow") == "POST");
    check_error(http_call(port, "POST", "/v1/chat/completions", text_request().dump(), auth, "text/plain"), 415,
                "unsupported_media_type", "application/json");
    check_error(http_call(port, "GET", "/health", "", "Host: attacker.example\r\n"), 400, "bad_message", "Host");
    check_error(http_call(port, "GET", "/v1/models", "", auth + std::string(20000, 'x') + ": y\r\n"), 413, "too_large",
                "http_max_header_bytes");
  }
  SECTION("a head trickled in byte by byte is cut off after the header timeout") {
    const int fd = connect_port(port);
    const std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    const auto t0 = std::chrono::steady_clock::now();
    bool closed = false;
    for (int i = 0; i < 40 && !closed; ++i) {   // 4 s of drip at most
      if (!send_all(fd, std::string(1, i < int(head.size()) ? head[size_t(i)] : 'a'))) closed = true;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) {
        char b;
        closed = ::recv(fd, &b, 1, 0) <= 0;
      }
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ::close(fd);
    CHECK(closed);
    CHECK(s < 3.0);   // --http-header-timeout 1
  }
  // Whatever came before, a good request is answered.
  const HttpResponse ok = post(text_request().dump());
  INFO(ok.body);
  REQUIRE(ok.status == 200);
  CHECK(json::parse(ok.body)["object"] == "chat.completion");
  CHECK(d.alive());
  std::filesystem::remove_all(keys);
}

TEST_CASE("http front answers a chat completion about a picture plainly and streamed") {
  HttpDaemon d;
  const int port = d.port();
  const HttpResponse health = http_call(port, "GET", "/health");
  CHECK(health.status == 200);
  CHECK(health.json()["status"] == "ok");
  const HttpResponse models = http_call(port, "GET", "/v1/models");
  REQUIRE(models.status == 200);
  const json list = models.json();
  CHECK(list["object"] == "list");
  REQUIRE(list["data"].size() == 1);
  const std::string name = list["data"][0]["id"];
  CHECK(list["data"][0]["object"] == "model");
  CHECK(http_call(port, "GET", "/v1/models/" + name).status == 200);
  check_error(http_call(port, "GET", "/v1/models/other"), 404, "model_not_found", "other");

  json req = {{"model", name}, {"messages", json::array({picture_message(picture_url())})}, {"max_tokens", 8},
              {"temperature", 0}, {"seed", 1}};
  const HttpResponse plain = http_call(port, "POST", "/v1/chat/completions", req.dump());
  INFO(plain.body);
  REQUIRE(plain.status == 200);
  const json c = plain.json();
  CHECK(c["id"].get<std::string>().rfind("chatcmpl-", 0) == 0);
  CHECK(c["object"] == "chat.completion");
  CHECK(c["created"].is_number_integer());
  CHECK(c["model"] == name);
  REQUIRE(c["choices"].size() == 1);
  CHECK(c["choices"][0]["index"] == 0);
  CHECK(c["choices"][0]["message"]["role"] == "assistant");
  const std::string text = c["choices"][0]["message"]["content"];
  const std::string finish = c["choices"][0]["finish_reason"];
  CHECK((finish == "stop" || finish == "length"));
  const json usage = c["usage"];
  CHECK(usage["prompt_tokens"].get<int>() > 16);   // the picture's rows at least
  CHECK(usage["completion_tokens"].get<int>() >= 1);
  CHECK(usage["total_tokens"] == usage["prompt_tokens"].get<int>() + usage["completion_tokens"].get<int>());

  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  const HttpResponse streamed = http_call(port, "POST", "/v1/chat/completions", req.dump());
  REQUIRE(streamed.status == 200);
  CHECK(streamed.header("content-type") == "text/event-stream");
  CHECK(streamed.header("transfer-encoding") == "chunked");
  const auto events = sse_events(streamed.body);
  INFO(streamed.body);
  REQUIRE(events.size() >= 4);   // role, content..., finish, usage, [DONE]
  CHECK(events.back() == "[DONE]");
  std::string joined;
  std::string stream_finish;
  json stream_usage;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json e = json::parse(events[i]);
    CHECK(e["object"] == "chat.completion.chunk");
    CHECK(e["id"] == json::parse(events[0])["id"]);
    CHECK(e["model"] == name);
    if (i == 0) CHECK(e["choices"][0]["delta"]["role"] == "assistant");
    if (e["choices"].empty()) {   // the usage chunk comes last
      CHECK(i + 2 == events.size());
      stream_usage = e["usage"];
      continue;
    }
    CHECK(e["usage"].is_null());
    const json& ch = e["choices"][0];
    if (ch["delta"].contains("content")) joined += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) stream_finish = ch["finish_reason"];
  }
  CHECK(joined == text);   // greedy: the same answer either way
  CHECK(stream_finish == finish);
  CHECK(stream_usage == usage);

  // Keep-alive: two requests on one connection.
  const int fd = connect_port(port);
  const std::string get = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
  send_all(fd, get);
  std::string raw;
  char buf[4096];
  while (raw.find("\"status\":\"ok\"") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    REQUIRE(n > 0);
    raw.append(buf, size_t(n));
  }
  CHECK(parse_response(raw).header("connection") == "keep-alive");
  send_all(fd, get);
  CHECK(::recv(fd, buf, sizeof buf, 0) > 0);
  ::close(fd);

  const HttpResponse metrics = http_call(port, "GET", "/metrics");
  REQUIRE(metrics.status == 200);
  CHECK(metric_value(metrics.body, "omnid_completed_requests_total") >= 2);
  CHECK(metric_value(metrics.body, "omnid_http_connections") >= 1);
}

TEST_CASE("http front cancels the request of a client that leaves mid-stream") {
  HttpDaemon d;
  const int port = d.port();
  json req = text_request(8000);
  req["stream"] = true;
  const std::string body = req.dump();
  const int fd = connect_port(port);
  send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body);
  std::string got;
  char buf[4096];
  auto events = [&] {
    size_t n = 0;
    for (size_t p = got.find("data: "); p != std::string::npos; p = got.find("data: ", p + 1)) ++n;
    return n;
  };
  while (events() < 3) {   // the head, the role chunk and two token chunks
    pollfd p{fd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) > 0);
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    REQUIRE(n > 0);
    got.append(buf, size_t(n));
  }
  CHECK(got.rfind("HTTP/1.1 200", 0) == 0);
  ::close(fd);
  // The request is dropped at the scheduler's next step: nothing stays active.
  double active = -1, generated = -1;
  for (int i = 0; i < 100; ++i) {
    const std::string m = http_call(port, "GET", "/metrics").body;
    active = metric_value(m, "omnid_active_requests");
    generated = metric_value(m, "omnid_generated_tokens_total");
    if (active == 0) break;
    std::this_thread::sleep_for(50ms);
  }
  CHECK(active == 0);
  CHECK(generated < 8000);   // cancelled, not run to its end
  CHECK(http_call(port, "POST", "/v1/chat/completions", text_request().dump()).status == 200);
}

TEST_CASE("http front reads file pictures only from under allowed_image_dirs") {
  const auto root = std::filesystem::temp_directory_path() / ("omnid-http-pics-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root / "allowed");
  std::filesystem::create_directories(root / "outside");
  std::filesystem::copy_file(kPicture, root / "allowed" / "pic.png");
  std::filesystem::copy_file(kPicture, root / "outside" / "secret.png");
  std::filesystem::create_symlink(root / "outside" / "secret.png", root / "allowed" / "link.png");
  std::filesystem::create_directory_symlink(root / "outside", root / "allowed" / "dirlink");
  HttpDaemon d({"--allowed-image-dir", (root / "allowed").string()});
  auto ask = [&](const std::string& url) {
    json req = text_request(2);
    req["messages"] = json::array({picture_message(url)});
    return http_call(d.port(), "POST", "/v1/chat/completions", req.dump());
  };
  const HttpResponse ok = ask("file://" + (root / "allowed" / "pic.png").string());
  INFO(ok.body);
  CHECK(ok.status == 200);
  check_error(ask("file://" + (root / "outside" / "secret.png").string()), 400, "bad_message", "allowed_image_dirs");
  check_error(ask("file://" + (root / "allowed" / "link.png").string()), 400, "bad_message", "allowed_image_dirs");
  check_error(ask("file://" + (root / "allowed" / "dirlink" / "secret.png").string()), 400, "bad_message",
              "allowed_image_dirs");
  check_error(ask("file://" + (root / "allowed" / ".." / "outside" / "secret.png").string()), 400, "bad_message",
              "allowed_image_dirs");
  check_error(ask("file://" + (root / "allowed" / "missing.png").string()), 400, "bad_image", "missing.png");
  check_error(ask("file://otherhost/etc/passwd"), 400, "bad_message", "file:///");
  std::filesystem::remove_all(root);
}

TEST_CASE("http front answers 503 while the model loads") {
  boost::asio::io_context io;
  server::ListenAddress addr{"127.0.0.1", 0, true};
  server::HttpFront front(io, server::bind_http_listener(addr), server::HttpSettings{}, /*backend=*/nullptr);
  const int port = front.port();
  std::thread t([&] { io.run(); });
  const HttpResponse health = http_call(port, "GET", "/health");
  const HttpResponse chat = http_call(port, "POST", "/v1/chat/completions", text_request().dump());
  io.stop();
  t.join();
  CHECK(health.status == 503);
  CHECK(health.body == R"({"status":"loading"})");
  check_error(chat, 503, "not_ready", "loading");
}

TEST_CASE("http settings: listen addresses and the api key file") {
  using server::parse_listen_address;
  CHECK(parse_listen_address("8000").address == "127.0.0.1");
  CHECK(parse_listen_address("8000").loopback);
  CHECK(parse_listen_address("localhost:8000").loopback);
  CHECK(parse_listen_address("[::1]:8000").loopback);
  CHECK_FALSE(parse_listen_address("0.0.0.0:8000").loopback);
  CHECK(parse_listen_address("0.0.0.0:8000").port == 8000);
  CHECK_THROWS_WITH(parse_listen_address("example.com:80"), Catch::Contains("numeric IP"));
  CHECK_THROWS_WITH(parse_listen_address("127.0.0.1:99999"), Catch::Contains("0..65535"));
  CHECK_THROWS_WITH(parse_listen_address("::1:80"), Catch::Contains("http_listen"));

  const auto dir = std::filesystem::temp_directory_path() / ("omnid-http-cfg-" + std::to_string(::getpid()));
  const std::string path = key_file(dir, "s3cret");
  server::ServerConfig c;
  c.api_key_file = path;
  c.load_api_key();
  CHECK(c.api_key == "s3cret");
  ::chmod(path.c_str(), 0644);
  server::ServerConfig open;
  open.api_key_file = path;
  CHECK_THROWS_WITH(open.load_api_key(), Catch::Contains(path) && Catch::Contains("every user"));
  server::ServerConfig both;
  both.model = "m";
  both.api_key = "a";
  both.api_key_file = path;
  CHECK_THROWS_WITH(both.validate(), Catch::Contains("not both"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("http front lets a running stream finish when the daemon drains") {
  HttpDaemon d({"--drain-seconds", "20"});
  json req = text_request(64);
  req["stream"] = true;
  const std::string body = req.dump();
  const int fd = connect_port(d.port());
  send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body);
  pollfd p{fd, POLLIN, 0};
  REQUIRE(::poll(&p, 1, 10000) > 0);   // it runs
  int code = -2;
  std::thread stopper([&] { code = d.stop(); });   // SIGTERM: the drain lets it finish
  const HttpResponse r = parse_response(recv_until_eof(fd, 20000ms));
  stopper.join();
  ::close(fd);
  REQUIRE(r.status == 200);
  const auto events = sse_events(r.body);
  REQUIRE(!events.empty());
  INFO(r.body);
  CHECK(events.back() == "[DONE]");
  CHECK(r.header("connection") == "keep-alive");   // sent before the drain began
  CHECK(code == 0);
}

TEST_CASE("http front caps its connections and closes idle keep-alive ones") {
  HttpDaemon d({"--http-max-connections", "2", "--http-idle-timeout", "1", "--http-header-timeout", "5"});
  const int a = connect_port(d.port()), b = connect_port(d.port());
  std::this_thread::sleep_for(200ms);   // both accepted
  const int c = connect_port(d.port());
  const HttpResponse over = parse_response(recv_until_eof(c, 3000ms));
  ::close(c);
  check_error(over, 429, "busy", "http_max_connections");
  ::close(b);
  // A keep-alive connection that asked once and then says nothing is closed after 1 s
  // (the header timeout, 5 s, is for a request that has begun).
  send_all(a, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const auto t0 = std::chrono::steady_clock::now();
  const HttpResponse health = parse_response(recv_until_eof(a, 4000ms));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(a);
  CHECK(health.status == 200);
  CHECK(s > 0.8);
  CHECK(s < 3.0);
  CHECK(http_call(d.port(), "GET", "/health").status == 200);
}
