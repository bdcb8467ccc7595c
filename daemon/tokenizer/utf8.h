#pragma once
// UTF-8 helpers shared by decoding and streaming: Hugging Face decodes with Rust's
// String::from_utf8_lossy, so ill-formed bytes become U+FFFD one "maximal subpart"
// at a time (Unicode's recommended practice); we reproduce that exactly.
#include <cstddef>
#include <string>
#include <string_view>

namespace omni::tok {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is ill-formed.
// When the sequence is cut short by the end of s, returns 0 and sets *truncated.
size_t utf8_valid_len(std::string_view s, size_t i, bool* truncated = nullptr);

// Appends s to out, replacing each maximal ill-formed subpart with U+FFFD.
// If keep_tail is set, a trailing incomplete-but-valid prefix is not converted;
// its length is returned (so the caller can hold it back), otherwise returns 0.
size_t append_utf8_lossy(std::string_view s, std::string& out, bool keep_tail = false);

// True when s is well-formed UTF-8.
bool is_valid_utf8(std::string_view s);

// Appends the UTF-8 encoding of code point cp.
void append_utf8(char32_t cp, std::string& out);

// Decodes the code point at s[i] (s must be valid UTF-8); advances i.
char32_t next_code_point(std::string_view s, size_t& i);

}  // namespace omni::tok
