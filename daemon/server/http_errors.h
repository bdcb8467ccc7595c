#pragma once
// How the HTTP front says no: the one table from the engine's error codes to HTTP
// statuses, and OpenAI's error body {"error": {"message", "type", "code"}}. Errors are
// classified by their code where they arise (ipc::ErrorCode, omni::Error::code), never
// by their message text.
#include <stdexcept>
#include <string>

#include "ipc/error.h"

namespace omni::server {

struct HttpError {
  int status = 500;
  std::string type;      // OpenAI's error type: invalid_request_error, rate_limit_error, server_error
  std::string code;      // machine-readable: the wire code name, or invalid_api_key, model_not_found, ...
  std::string message;   // for a person, naming the field

  // bad_message, bad_frame, bad_image: 400; too_large: 413; not_allowed: 401; busy: 429;
  // not_ready: 503; anything else: 500.
  static HttpError from_code(ipc::ErrorCode code, std::string message);
  static HttpError not_found(std::string message);                 // 404 not_found
  static HttpError method_not_allowed(std::string message);        // 405 method_not_allowed
  static HttpError unsupported_media_type(std::string message);    // 415 unsupported_media_type
  static HttpError invalid_api_key(std::string message);           // 401 invalid_api_key
  static HttpError model_not_found(std::string message);           // 404 model_not_found

  std::string body() const;   // the OpenAI error object, serialized
};

// Thrown by the request readers (openai_chat, http_image_files); the connection answers it.
class HttpFailure : public std::runtime_error {
 public:
  explicit HttpFailure(HttpError e) : std::runtime_error(e.message), error_(std::move(e)) {}
  const HttpError& error() const noexcept { return error_; }

 private:
  HttpError error_;
};

// The reason phrase of the statuses this front sends ("Not Found").
const char* http_reason(int status) noexcept;

}  // namespace omni::server
