# Every dependency comes from a Debian 12 package (scripts/setup.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED)                 # Asio + Interprocess, header-only
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(msgpack REQUIRED CONFIG PATHS /usr/lib/x86_64-linux-gnu/cmake/msgpackc-cxx)   # target msgpackc-cxx
find_package(PNG REQUIRED)
find_package(JPEG REQUIRED)
find_package(OpenSSL REQUIRED)                    # SHA-256 of image bytes
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(WEBP REQUIRED IMPORTED_TARGET libwebp)
pkg_check_modules(SYSTEMD IMPORTED_TARGET libsystemd)

# spdlog and fmt built into the binaries, once (cmake/spdlog_fmt_compiled.cpp): they must
# run on machines whose spdlog/fmt shared libraries have other sonames (the lent GPU
# machine has spdlog 1.12), and compiling them header-only in every file that logs cost
# minutes of each build.
add_library(omni_log STATIC ${PROJECT_SOURCE_DIR}/cmake/spdlog_fmt_compiled.cpp)
target_compile_definitions(omni_log PUBLIC SPDLOG_COMPILED_LIB SPDLOG_FMT_EXTERNAL)
target_link_libraries(omni_log PUBLIC Threads::Threads PRIVATE omni_flags)
set_target_properties(omni_log PROPERTIES POSITION_INDEPENDENT_CODE ON)

# CUDA: AUTO builds the backend when nvcc is found; with none the build still succeeds.
set(OMNI_HAVE_CUDA OFF)
if(NOT OMNI_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(OMNI_HAVE_CUDA ON)
  elseif(OMNI_CUDA STREQUAL "ON")
    message(FATAL_ERROR "OMNI_CUDA=ON but no nvcc was found")
  endif()
endif()
message(STATUS "omnid: CUDA backend ${OMNI_HAVE_CUDA}")
