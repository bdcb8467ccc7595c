// ipc/value.h - a generic msgpack-like value (used for status details: placement,
// memory per device, anything the daemon wants to report without a schema change).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace omni::ipc {

struct Value {
  using Array = std::vector<Value>;
  using Map = std::vector<std::pair<std::string, Value>>;  // insertion order kept
  std::variant<std::monostate, bool, int64_t, uint64_t, double, std::string, Array, Map> v;

  Value() = default;
  Value(bool b) : v(b) {}
  Value(int i) : v(int64_t{i}) {}
  Value(int64_t i) : v(i) {}
  Value(uint64_t u) : v(u) {}
  Value(double d) : v(d) {}
  Value(const char* s) : v(std::string(s)) {}
  Value(std::string s) : v(std::move(s)) {}
  Value(Array a) : v(std::move(a)) {}
  Value(Map m) : v(std::move(m)) {}

  bool is_nil() const { return std::holds_alternative<std::monostate>(v); }
  const Map* map() const { return std::get_if<Map>(&v); }
  /// Map lookup (nullptr when not a map or key absent).
  const Value* find(const std::string& key) const;
};

}  // namespace omni::ipc
