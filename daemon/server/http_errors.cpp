#include "server/http_errors.h"

#include <nlohmann/json.hpp>

namespace omni::server {

HttpError HttpError::from_code(ipc::ErrorCode code, std::string message) {
  using C = ipc::ErrorCode;
  int status = 500;
  std::string type = "invalid_request_error";
  switch (code) {
    case C::bad_message:
    case C::bad_frame:
    case C::bad_image: status = 400; break;
    case C::too_large: status = 413; break;   // a prompt longer than the context is too_large too
    case C::not_allowed: status = 401; break;
    case C::busy: status = 429; type = "rate_limit_error"; break;
    case C::not_ready: status = 503; type = "server_error"; break;
    case C::ok:
    case C::unsupported_version:
    case C::internal:
    case C::unavailable:
    case C::timeout: status = 500; type = "server_error"; break;
  }
  return {status, std::move(type), ipc::error_code_name(code), std::move(message)};
}

HttpError HttpError::not_found(std::string message) {
  return {404, "invalid_request_error", "not_found", std::move(message)};
}

HttpError HttpError::method_not_allowed(std::string message) {
  return {405, "invalid_request_error", "method_not_allowed", std::move(message)};
}

HttpError HttpError::unsupported_media_type(std::string message) {
  return {415, "invalid_request_error", "unsupported_media_type", std::move(message)};
}

HttpError HttpError::invalid_api_key(std::string message) {
  return {401, "invalid_request_error", "invalid_api_key", std::move(message)};
}

HttpError HttpError::model_not_found(std::string message) {
  return {404, "invalid_request_error", "model_not_found", std::move(message)};
}

std::string HttpError::body() const {
  // Invalid UTF-8 from a client (a field name it sent) must not throw here: replaced.
  return nlohmann::json{{"error", {{"message", message}, {"type", type}, {"code", code}}}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

const char* http_reason(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

}  // namespace omni::server
