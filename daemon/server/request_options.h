#pragma once
// What every front (the Unix socket's sessions, the HTTP front) does the same way when it
// turns a client's request into a sched::Request: sampling fields over the model's
// defaults, and the engine's finish reasons in the wire's terms.
#include "ipc/messages.h"
#include "model/generation.h"
#include "sched/request.h"

namespace omni::server {

// Unset fields keep `defaults` (ChatModel::default_sampling); greedy, or temperature 0,
// is argmax. Throws ipc::IpcError(bad_message) naming the field when a value is invalid.
SamplingParams resolve_sampling(const SamplingParams& defaults, const ipc::Sampling& wire);

ipc::FinishReason wire_reason(FinishReason r) noexcept;

}  // namespace omni::server
