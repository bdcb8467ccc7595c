#pragma once
// GPT-2's byte-level alphabet: every byte is shown as a printable code point
// (space -> 'Ġ', newline -> 'Ċ', ...). Vocabularies are written in that alphabet;
// internally we work on raw bytes and translate only at load and decode time.
#include <optional>
#include <string>
#include <string_view>

namespace omni::tok {

// The code point that stands for byte b.
char32_t byte_to_char(unsigned char b);

// Raw bytes of a vocabulary entry written in the byte-level alphabet, or nullopt
// if some code point is not part of that alphabet.
std::optional<std::string> byte_level_to_bytes(std::string_view token);

// The byte-level spelling of raw bytes (inverse of byte_level_to_bytes).
std::string bytes_to_byte_level(std::string_view bytes);

}  // namespace omni::tok
