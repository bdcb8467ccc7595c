// sdk/status_map.h - ipc::ErrorCode -> omni_status (shared by the C API and the plugin).
#pragma once

#include "ipc/error.h"
#include "omni_client.h"

namespace omni::sdk {

inline omni_status to_status(ipc::ErrorCode c) noexcept {
  using E = ipc::ErrorCode;
  switch (c) {
    case E::ok: return OMNI_OK;
    case E::bad_frame:
    case E::bad_message: return OMNI_E_PROTOCOL;
    case E::too_large: return OMNI_E_TOO_LARGE;
    case E::unsupported_version: return OMNI_E_UNSUPPORTED_VERSION;
    case E::busy: return OMNI_E_BUSY;
    case E::not_allowed: return OMNI_E_NOT_ALLOWED;
    case E::bad_image: return OMNI_E_BAD_IMAGE;
    case E::not_ready: return OMNI_E_NOT_READY;
    case E::unavailable: return OMNI_E_UNAVAILABLE;
    case E::timeout: return OMNI_E_TIMEOUT;
    case E::internal: break;
  }
  return OMNI_E_INTERNAL;
}

}  // namespace omni::sdk
