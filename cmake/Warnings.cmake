# Project-wide warning and sanitizer flags, applied through an interface target so
# that third-party headers keep their own settings.
add_library(omni_flags INTERFACE)
target_compile_options(omni_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX,C>:-Wall -Wextra -Wno-missing-field-initializers>)
if(OMNI_WERROR)
  target_compile_options(omni_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX,C>:-Werror>)
endif()
if(OMNI_SANITIZE)
  set(_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  # GCC 12 reports false -Wmaybe-uninitialized inside libstdc++ <regex> under ASan.
  target_compile_options(omni_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX,C>:${_san} -Wno-maybe-uninitialized>)
  target_link_options(omni_flags INTERFACE ${_san})
endif()
