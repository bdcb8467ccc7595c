// omnid run: answers one question (optionally about pictures and videos) in this process and
// prints the answer as it is generated.
#include <cstdio>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/preflight.h"
#include "cli/read_file.h"
#include "cli/sampling_options.h"
#include "cli/video_options.h"
#include "model/answer.h"
#include "util/error.h"

namespace omni {

namespace {

struct RunArgs {
  std::string model, question;
  std::vector<std::string> images;
  int max_tokens = 512;
  bool think = false;
  std::vector<std::string> stops;
  DeviceOptions devices;
  SamplingOptions sampling;
  VideoOptions video;
};

void run(const RunArgs& a) {
  ChatModelOptions mo;
  if (a.think) mo.enable_thinking = true;
  // Everything named on the command line is checked (and the pictures read) before the load.
  check_sampling(a.sampling);
  std::vector<ImageInput> images;
  for (const auto& path : a.images) {
    check_readable_file(path, "--image");
    as_usage_error("--image", [&] { images.push_back(ImageInput::from_bytes(path, read_file_bytes(path, mo.image_limits.max_encoded_bytes))); });
  }
  AnswerOptions opt;
  a.video.apply(opt.prompt);
  for (auto& v : a.video.read(mo.video_limits)) images.push_back(std::move(v));
  check_model_and_plan(a.model, a.devices);
  auto model = ChatModel::load(a.model, a.devices.placer(a.model), log_progress(a.model), mo);
  opt.sampling = a.sampling.resolve(model->default_sampling());
  opt.max_tokens = a.max_tokens;
  opt.stop_strings = a.stops;
  answer(*model, images, a.question, opt, [](const std::string& piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  });
  std::fputc('\n', stdout);
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Answer one question, optionally about pictures and videos, and print the answer");
  cmd->add_option("--model", a->model, "Checkpoint folder (Hugging Face layout)")->required();
  cmd->add_option("--image", a->images, "A picture (JPEG, PNG, WebP); repeat for several");
  cmd->add_option("--max-tokens", a->max_tokens, "Most tokens to generate")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  cmd->add_option("--stop", a->stops, "Stop when the answer contains this text; repeatable");
  cmd->add_flag("--think", a->think, "Let the model reason in a <think> block first (Qwen3-style templates: MiniCPM-V 4.5)");
  cmd->add_option("question", a->question, "The question")->required();
  a->devices.add_to(cmd);
  a->sampling.add_to(cmd);
  a->video.add_to(cmd);
  cmd->callback([a] { run(*a); });
}

}  // namespace omni
