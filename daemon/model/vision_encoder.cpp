#include "model/vision_encoder.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "kernels/device.h"
#include "model/resampler.h"
#include "model/vision_tower.h"
#include "util/error.h"

namespace omni {

struct VisionEncoder::Copy {
  std::unique_ptr<VisionTower> tower;
  std::unique_ptr<Resampler> resampler;
  std::shared_ptr<kernels::Device> device;
};

void VisionEncoder::plan_weights(WeightLoader& loader, const VisionConfig& vc, const std::string& tower_prefix,
                                 const std::string& resampler_prefix) {
  VisionTower::plan_weights(loader, vc, tower_prefix);
  Resampler::plan_weights(loader, resampler_prefix);
}

VisionEncoder::VisionEncoder(WeightLoader& loader, const VisionConfig& vc, const std::string& tower_prefix,
                             const std::string& resampler_prefix, Shape shape, PixelFn pixels,
                             std::vector<std::shared_ptr<kernels::Device>> devices)
    : shape_(shape), pixels_(std::move(pixels)) {
  if (devices.empty() || !devices.front()) throw Error("vision encoder: no device");
  if (shape.embed_dim % 128) throw Error("vision encoder: the resampler's width must be a multiple of 128 (its heads)");
  for (const auto& d : devices) {
    if (!d) throw Error("vision encoder: no device");
    for (const auto& c : copies_)
      if (c->device == d) throw Error("vision encoder: " + d->id().str() + " is listed twice");
    auto c = std::make_unique<Copy>();
    c->device = d;
    c->tower = std::make_unique<VisionTower>(loader, vc, tower_prefix, d);
    c->resampler = std::make_unique<Resampler>(loader, shape.embed_dim, vc.hidden, shape.query_num,
                                               shape.embed_dim / 128, resampler_prefix, d);
    copies_.push_back(std::move(c));
  }
}

VisionEncoder::~VisionEncoder() = default;

const std::shared_ptr<kernels::Device>& VisionEncoder::device(size_t i) const { return copies_.at(i)->device; }

std::vector<VisionUnit> VisionEncoder::units_of(const std::vector<image::Image>& pieces,
                                                const std::vector<int32_t>& temporal_ids, float* out,
                                                size_t rows_per_unit) {
  const size_t frames = temporal_ids.empty() ? 1 : temporal_ids.size();
  if (pieces.size() % frames)
    throw Error("vision encoder: " + std::to_string(pieces.size()) + " pieces do not split into " +
                std::to_string(frames) + " frames");
  std::vector<VisionUnit> units(pieces.size() / frames);
  for (size_t r = 0; r < units.size(); ++r) {
    for (size_t f = 0; f < frames; ++f) units[r].pieces.push_back(&pieces[r * frames + f]);
    if (!temporal_ids.empty()) units[r].temporal_ids = &temporal_ids;
    units[r].out = out + r * rows_per_unit;
  }
  return units;
}

void VisionEncoder::encode(const Copy& c, const VisionUnit& u, kernels::TurnLock* turns) const {
  auto turn = [&] { return turns ? std::unique_lock<kernels::TurnLock>(*turns) : std::unique_lock<kernels::TurnLock>(); };
  const image::Image& first = *u.pieces.front();
  const int ps = shape_.patch_size;
  // Normalising is host work: done before the device's turn is taken.
  std::vector<std::vector<float>> px;
  for (const image::Image* p : u.pieces) {
    if (p->width != first.width || p->height != first.height)
      throw Error("vision encoder: the frames of a group differ in size");
    px.push_back(pixels_(*p));
  }
  std::vector<float> rows;
  if (!u.temporal_ids) {
    auto t = turn();
    const int h = first.height / ps, w = first.width / ps;
    kernels::Tensor feats = u.strip_patches > 0
                                ? c.tower->encode_strip(px.front(), first.height, first.width, u.strip_patches)
                                      .rows_view(0, int64_t(h) * w)
                                : c.tower->encode(px.front(), first.height, first.width);
    rows = c.resampler->forward(feats, h, w).to_host();
  } else {
    std::vector<kernels::Tensor> xs;
    for (size_t f = 0; f < px.size(); ++f) {
      auto t = turn();
      xs.push_back(c.tower->encode(px[f], first.height, first.width));
    }
    auto t = turn();
    rows = c.resampler->forward_frames(xs, first.height / ps, first.width / ps, *u.temporal_ids).to_host();
  }
  if (rows.size() != size_t(shape_.query_num) * size_t(shape_.embed_dim))
    throw Error("vision encoder: the resampler gave " + std::to_string(rows.size()) + " values for " +
                std::to_string(shape_.query_num) + " rows of " + std::to_string(shape_.embed_dim));
  std::copy(rows.begin(), rows.end(), u.out);
}

void VisionEncoder::run(const std::vector<VisionUnit>& units, kernels::TurnLock* turns,
                        const image::DecodeInterrupt& interrupted) const {
  auto check = [&] {
    if (interrupted && interrupted()) throw image::DecodeInterrupted("encoding the pictures was interrupted");
  };
  const size_t n = std::min(copies_.size(), units.size());
  if (n <= 1) {
    for (const VisionUnit& u : units) {
      check();
      encode(*copies_.front(), u, turns);
    }
    return;
  }
  // A shared queue rather than fixed chunks: pieces differ in size (a picture's overview
  // and its slices) and devices in speed, and the rows' places do not depend on who runs them.
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::exception_ptr> errors(n);
  auto work = [&](size_t k) {
    kernels::TurnLock* lock = !turns ? nullptr : k == 0 ? turns : &copies_[k]->device->exec_mutex();
    try {
      for (size_t i = 0; !failed.load() && (i = next.fetch_add(1)) < units.size();) {
        check();
        encode(*copies_[k], units[i], lock);
      }
    } catch (...) {
      errors[k] = std::current_exception();
      failed = true;
    }
  };
  std::vector<std::thread> threads;
  for (size_t k = 1; k < n; ++k) {
    try {
      threads.emplace_back(work, k);
    } catch (const std::system_error&) {
      break;   // no thread to be had: the copies already started (and this one) take the rest
    }
  }
  work(0);
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace omni
