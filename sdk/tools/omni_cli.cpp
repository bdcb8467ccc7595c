// omni - command-line client of the omnid daemon.
//   omni ask --socket PATH [--image FILE]... [--system TEXT] [--max-tokens N] [--greedy] "question"
//   omni ask --socket PATH --messages FILE.json [--system TEXT] ...   (a conversation)
//   omni status --socket PATH [--json]
// Exit codes: 0 ok, 1 usage, 2 daemon unreachable, 3 request failed.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "omni_version.h"
#include "ipc/chat_json.h"
#include "sdk/client.h"

namespace {

// FILE.json: an OpenAI-style `messages` array, or an object holding one (a chat
// completions body). Pictures: data: URLs, file:// URLs, or paths relative to the file.
void read_messages_file(const std::string& file, const omni::ipc::Limits& limits, omni::sdk::GenerateRequest& req) {
  using omni::sdk::Error;
  using omni::ipc::ErrorCode;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorCode::bad_message, file + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::bad_message, file + ": malformed JSON: " + e.what());
  }
  const nlohmann::json& messages = j.is_object() && j.contains("messages") ? j["messages"] : j;
  omni::ipc::ChatMessages chat;
  try {
    chat = omni::ipc::read_chat_messages(messages, limits);
  } catch (const omni::ipc::IpcError& e) {
    throw Error(e.code(), file + ": " + e.what());
  }
  const std::filesystem::path base = std::filesystem::path(file).parent_path();
  for (auto& pic : chat.pictures) {
    if (pic.kind == omni::ipc::PictureSource::Kind::bytes) {
      req.images.push_back(pic.video ? omni::sdk::Image::video_from_bytes(pic.bytes)
                                     : omni::sdk::Image::from_bytes(pic.bytes));
      continue;
    }
    std::string path = pic.location;
    if (path.rfind("file://", 0) == 0) path = path.substr(7);
    else if (path.find("://") != std::string::npos)
      throw Error(ErrorCode::bad_image, file + ": " + pic.where + ": '" + pic.location +
                                            "' is not fetched (use a data: URL, a file:// URL or a path)");
    std::filesystem::path p(path);
    if (p.is_relative()) p = base / p;
    req.images.push_back(pic.video ? omni::sdk::Image::video_from_file(p.string(), limits.max_video_bytes)
                                   : omni::sdk::Image::from_file(p.string(), limits.max_image_bytes));
  }
  req.messages = std::move(chat.turns);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"omni: client of the omnid inference daemon"};
  app.require_subcommand(1);
  const char* env_sock = std::getenv("OMNI_SOCKET");
  std::string socket = env_sock ? env_sock : "/run/omnid/omnid.sock";

  auto* ask = app.add_subcommand("ask", "ask a question (optionally about images); prints the answer");
  std::vector<std::string> images;
  uint32_t max_tokens = 256;
  bool greedy = false;
  std::optional<double> temperature, top_p, repetition_penalty;   // unset: the model's defaults
  std::optional<uint32_t> top_k;
  uint32_t deadline_ms = 0;
  uint64_t seed = 0;
  std::string question;
  std::vector<std::string> stops;
  bool show_stats = false;
  std::string system, messages_file;
  std::optional<uint32_t> max_slice_nums;
  bool image_id_on = false, image_id_off = false;
  std::vector<std::string> videos;
  std::optional<double> video_fps;
  std::optional<uint32_t> video_max_frames, video_max_packing, video_max_slice_nums;
  ask->add_option("--socket", socket, "daemon socket path (env OMNI_SOCKET)");
  ask->add_option("--image", images, "image file (repeatable)")->allow_extra_args(false);
  ask->add_option("--video", videos, "video file (MP4, WebM, MKV, AVI; repeatable; after the images)")
      ->allow_extra_args(false);
  ask->add_option("--video-fps", video_fps, "frames sampled per second (default: the model's, 2.6: 1, 4.5: 3)")
      ->check(CLI::Range(0.001, omni::ipc::kMaxVideoFps));
  ask->add_option("--video-max-frames", video_max_frames, "frames at most (4.5: frame groups; default 64 / 180)")
      ->check(CLI::Range(1u, omni::ipc::kMaxVideoFrames));
  ask->add_option("--video-max-packing", video_max_packing, "4.5: frames per group at most (default 3)")
      ->check(CLI::Range(1u, omni::ipc::kMaxVideoPacking));
  ask->add_option("--video-max-slice-nums", video_max_slice_nums, "slices per frame (default 2.6: 2, 4.5: 1)")
      ->check(CLI::Range(1u, omni::ipc::kMaxSliceNums));
  ask->add_option("--max-tokens", max_tokens, "maximum new tokens")->check(CLI::Range(1u, 1000000u));
  ask->add_flag("--greedy", greedy, "greedy decoding");
  ask->add_option("--temperature", temperature, "sampling temperature (default: the model's)");
  ask->add_option("--top-p", top_p, "nucleus mass in (0, 1] (default: the model's)");
  ask->add_option("--top-k", top_k, "keep the k most likely tokens, 0 = all (default: the model's)");
  ask->add_option("--repetition-penalty", repetition_penalty, "1 = off (default: the model's)");
  ask->add_option("--seed", seed);
  ask->add_option("--deadline-ms", deadline_ms);
  ask->add_option("--stop", stops, "stop when the answer contains this text (not shown); repeatable")->allow_extra_args(false);
  ask->add_flag("--stats", show_stats, "print counts and timings to stderr");
  ask->add_option("--system", system, "a system turn put first");
  auto* messages_opt = ask->add_option("--messages", messages_file,
                                       "a conversation: a JSON file with an OpenAI-style messages array");
  ask->add_option("--max-slice-nums", max_slice_nums, "slices per picture (default: the model's)")
      ->check(CLI::Range(1u, omni::ipc::kMaxSliceNums));
  auto* id_on = ask->add_flag("--use-image-id", image_id_on, "number the pictures in the prompt (default: the model's)");
  ask->add_flag("--no-use-image-id", image_id_off, "do not number the pictures in the prompt")->excludes(id_on);
  auto* question_opt = ask->add_option("question", question, "the question");
  question_opt->excludes(messages_opt);
  messages_opt->excludes("--image");
  messages_opt->excludes("--video");

  auto* status = app.add_subcommand("status", "print daemon status");
  bool json = false;
  status->add_option("--socket", socket, "daemon socket path (env OMNI_SOCKET)");
  status->add_flag("--json", json, "print JSON");

  // Exit codes: 0 success, 1 the daemon unreachable or the request failed, 2 a usage mistake.
  app.footer("Exit codes: 0 success, 1 daemon unreachable or request failed, 2 usage error.");
  bool version = false;   // handled before parsing: it needs no subcommand
  app.add_flag("--version", version, "Print the version and git revision, then exit");
  if (argc >= 2 && std::string(argv[1]) == "--version") {
    std::printf("omni " OMNI_VERSION " (git " OMNI_GIT_REVISION ")\nbackends built (in omnid): " OMNI_BACKENDS_BUILT "\n");
    return 0;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  omni::sdk::ClientOptions opts;
  opts.socket_path = socket;
  opts.client_name = "omni-cli";
  omni::sdk::Client client(opts);
  try {
    if (*status) {
      const auto s = client.status();
      if (json) {
        std::cout << omni::sdk::status_to_json(s, 2) << "\n";
      } else {
        std::cout << "model: " << s.model << "\nqueue_depth: " << s.queue_depth
                  << "\nactive_requests: " << s.active_requests << "\ntokens_per_s: " << s.tokens_per_s << "\n";
      }
      return 0;
    }
    if (!*question_opt && !*messages_opt) {
      std::fprintf(stderr, "omni ask: give a question or --messages FILE.json\n");
      return 2;
    }
    omni::sdk::GenerateRequest req;
    req.prompt = question;
    req.system = system;
    req.options.max_slice_nums = max_slice_nums;
    if (image_id_on || image_id_off) req.options.use_image_id = image_id_on;
    req.options.video_fps = video_fps;
    req.options.video_max_frames = video_max_frames;
    req.options.video_max_packing = video_max_packing;
    req.options.video_max_slice_nums = video_max_slice_nums;
    req.max_tokens = max_tokens;
    req.sampling.greedy = greedy;
    req.sampling.temperature = temperature;
    req.sampling.top_p = top_p;
    req.sampling.top_k = top_k;
    req.sampling.repetition_penalty = repetition_penalty;
    req.sampling.seed = seed;
    req.deadline_ms = deadline_ms;
    req.stop = stops;
    // Picture files are bounded by the daemon's max_image_bytes, learnt from its hello_ok.
    if (*messages_opt) {
      read_messages_file(messages_file, client.connect().limits, req);
    } else {
      omni::ipc::Limits limits;
      if (!images.empty() || !videos.empty()) limits = client.connect().limits;
      for (const auto& f : images) req.images.push_back(omni::sdk::Image::from_file(f, limits.max_image_bytes));
      for (const auto& f : videos) req.images.push_back(omni::sdk::Image::video_from_file(f, limits.max_video_bytes));
    }
    const auto done = client.generate(req, [](const omni::ipc::Token& t) {
      std::fwrite(t.text.data(), 1, t.text.size(), stdout);
      std::fflush(stdout);
    });
    std::fputc('\n', stdout);
    if (show_stats)
      std::fprintf(stderr, "reason=%s prompt_tokens=%u completion_tokens=%u total_ms=%.1f\n",
                   omni::ipc::finish_reason_name(done.reason), done.prompt_tokens, done.completion_tokens,
                   done.timings.total_ms);
    if (done.reason == omni::ipc::FinishReason::error) {
      std::fprintf(stderr, "omni: request failed: %s: %s\n", omni::ipc::error_code_name(done.error_code), done.error_message.c_str());
      return 1;
    }
    return 0;
  } catch (const omni::sdk::Error& e) {
    std::fprintf(stderr, "omni: %s: %s\n", omni::ipc::error_code_name(e.code()), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "omni: %s\n", e.what());
    return 1;
  }
}
