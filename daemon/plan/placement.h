#pragma once
// Turns a plan into the devices and the DecoderPlacement the model loads onto: one
// device object per named device (stages listed on the same device share it), each
// made with its max_memory cap.
#include "model/decoder.h"
#include "plan/plan.h"

namespace omni::plan {

DecoderPlacement make_placement(const Plan& plan);

}  // namespace omni::plan
