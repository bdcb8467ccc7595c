#pragma once
// What the scheduler is asked to do, and how it answers: the transport-free shape of
// a generation request. The daemon's server fills these from IPC frames.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipc/error.h"
#include "model/answer.h"
#include "ipc/conversation.h"

namespace omni::sched {

struct Result {
  FinishReason finish_reason = FinishReason::none;
  ipc::ErrorCode error = ipc::ErrorCode::ok;   // with error: where it arose (omni::Error::code)
  std::string error_message;
  uint32_t prompt_tokens = 0, completion_tokens = 0, image_tokens = 0;
  double queue_ms = 0, prefill_ms = 0, decode_ms = 0, total_ms = 0;
};

// Called on the scheduler's threads (the step loop; on_done also from the admission
// thread when preparing fails); must not block (queue the bytes and return).
struct Events {
  std::function<void(const std::string& text, int32_t token)> on_token;
  std::function<void(const Result&)> on_done;   // exactly once per accepted request
};

struct Request {
  uint64_t id = 0;                 // the client's id, for logs
  std::vector<ImageInput> images;
  std::vector<ipc::Turn> messages;   // the conversation; its picture parts index `images`
  ipc::PromptOptions prompt;
  AnswerOptions options;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  Events events;
};

// Shared between the submitter and the scheduler: cancel() may come from any thread,
// any number of times.
class Ticket {
 public:
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  std::atomic<bool> cancelled_{false};
};

}  // namespace omni::sched
