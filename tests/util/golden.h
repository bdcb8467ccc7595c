#pragma once
// Helpers shared by the golden tests: relative error and fixture paths.
#include <cmath>
#include <string>
#include <vector>

namespace omni::test {

inline std::string data(const std::string& rel) { return std::string(OMNI_TEST_DATA) + "/" + rel; }

// ‖a − b‖ / ‖b‖ over all elements.
inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

}  // namespace omni::test
