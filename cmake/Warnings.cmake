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
  # GCC 12 reports false positives inside libstdc++ (<regex>, std::string copies) once
  # the sanitizers instrument it; these warnings stay on in the normal build.
  target_compile_options(omni_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX,C>:${_san} -Wno-maybe-uninitialized
                         -Wno-restrict -Wno-stringop-overflow -Wno-stringop-overread -Wno-array-bounds>)
  target_link_options(omni_flags INTERFACE ${_san})
endif()
if(OMNI_TSAN)
  # ThreadSanitizer for the threaded parts (pipeline stages, scheduler, server); run with
  # OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1, as libgomp and OpenBLAS are not instrumented.
  # GCC warns that atomic_thread_fence (used by Boost.Asio) is not supported: not an error here.
  target_compile_options(omni_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX,C>:-fsanitize=thread -Wno-tsan>)
  target_link_options(omni_flags INTERFACE -fsanitize=thread)
endif()
