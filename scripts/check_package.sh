#!/usr/bin/env bash
# Builds the Debian package from an existing build folder and checks it: the paths it
# must hold, `systemd-analyze verify` on its units as installed, and the service's
# hardening score (`systemd-analyze security --offline=yes`, at most 4.0). CI runs it
# after scripts/test.sh (.ci/run). Needs cpack, dpkg-deb, dpkg-shlibdeps (dpkg-dev) and
# systemd-analyze (systemd): scripts/setup.sh installs them.
#   scripts/check_package.sh [BUILD_DIR]     (default: build)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$here/build}" && pwd)"

failures=0
fail() { echo "check_package: FAIL: $*" >&2; failures=$((failures + 1)); }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- Build the package ---------------------------------------------------------------------
# Into a folder of its own, so no older .deb in the build folder is taken for it.
if ! (cd "$build" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1); then
  cat "$work/cpack.log" >&2
  echo "check_package: FAIL: cpack -G DEB" >&2
  exit 1
fi
debs=("$work"/out/omnid_*.deb)
if [ ${#debs[@]} -ne 1 ] || [ ! -f "${debs[0]}" ]; then
  echo "check_package: FAIL: expected one omnid_*.deb, got: ${debs[*]}" >&2
  exit 1
fi
deb="${debs[0]}"
echo "check_package: built $(basename "$deb")"

# --- Its contents ----------------------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$work/contents"
expect=(
  /usr/bin/omnid
  /usr/bin/omni
  /usr/lib/systemd/system/omnid.service
  /usr/lib/systemd/system/omnid.socket
  /usr/lib/sysusers.d/omnid.conf
  /usr/lib/tmpfiles.d/omnid.conf
  /etc/omnid/omnid.toml
  /usr/include/omni/omni_plugin.h
  /usr/include/omni/omni_client.h
  /usr/share/doc/omnid/operations.md
  /usr/share/doc/omnid/examples/c_host/c_host.c
)
for p in "${expect[@]}"; do
  grep -qx "$p" "$work/contents" || fail "the package lacks $p"
done
# Where GNUInstallDirs puts libraries (lib/ or lib/<multiarch>/) is the build's choice.
for re in '/usr/lib/(.*/)?libomni_plugin\.so\.[0-9]+' '/usr/lib/(.*/)?libomni_client\.so\.[0-9]+' \
          '/usr/lib/(.*/)?pkgconfig/omni-plugin\.pc' '/usr/lib/(.*/)?pkgconfig/omni-client\.pc' \
          '/usr/lib/(.*/)?omnid/libomni_kernels\.so'; do
  grep -Eqx "$re" "$work/contents" || fail "the package has no file matching $re"
done
# (Listings go to files first: grep -q closing a pipe early would fail it under pipefail.)
mkdir "$work/control"
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/omnid/omnid.toml "$work/control/conffiles" 2>/dev/null || fail "/etc/omnid/omnid.toml is not a conffile"
for s in postinst prerm postrm triggers; do
  [ -f "$work/control/$s" ] || fail "no $s in the control archive"
done
# One package for CPU-only and GPU machines: it must never depend on CUDA.
depends="$(dpkg-deb -f "$deb" Depends)"
if grep -Eiq 'cuda|cublas|nccl' <<<"$depends"; then
  fail "Depends names CUDA: $depends"
fi

# --- The units as installed ---------------------------------------------------------------
root="$work/root"
dpkg-deb -x "$deb" "$root"
unit_dir="$root/usr/lib/systemd/system"
grep -q '^ExecStart=/usr/bin/omnid serve --config /etc/omnid/omnid.toml$' "$unit_dir/omnid.service" ||
  fail "omnid.service: ExecStart does not run /usr/bin/omnid with /etc/omnid/omnid.toml"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "check_package: SKIPPED: systemd-analyze not installed (unit checks)"
else
  # verify with --root: ExecStart= (/usr/bin/omnid) is looked up inside the extracted
  # tree; the targets the units name (sockets.target, sysinit.target) come from the
  # host's units, copied beside them (the package's own files win).
  cp -rn /usr/lib/systemd/system/. "$unit_dir/" 2>/dev/null || true
  if ! SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no --root="$root" \
      "$unit_dir/omnid.socket" "$unit_dir/omnid.service" >"$work/verify.log" 2>&1; then
    cat "$work/verify.log" >&2
    fail "systemd-analyze verify omnid.socket omnid.service"
  elif [ -s "$work/verify.log" ]; then
    cat "$work/verify.log" >&2
    fail "systemd-analyze verify printed warnings"
  else
    echo "check_package: systemd-analyze verify: ok"
  fi
  version="$(systemd-analyze --version | awk 'NR == 1 {print $2}')"
  if [ "${version%%.*}" -lt 250 ] 2>/dev/null; then
    echo "check_package: SKIPPED: systemd $version has no security --offline/--threshold (needs 250)"
  else
    # --threshold is in tenths: 40 is an exposure of 4.0.
    if ! systemd-analyze security --offline=yes --threshold=40 --root="$root" \
        "$unit_dir/omnid.service" >"$work/security.log" 2>&1; then
      cat "$work/security.log" >&2
      fail "omnid.service exposure above 4.0"
    fi
    echo "check_package: $(grep -o 'Overall exposure level.*' "$work/security.log" || echo 'no exposure line')"
    # The GPU device nodes must stay reachable.
    for node in /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia-uvm-tools /dev/nvidia-modeset \
                char-nvidia-frontend char-nvidia-caps; do
      grep -q "^DeviceAllow=$node rw" "$unit_dir/omnid.service" || fail "omnid.service: no DeviceAllow=$node rw"
    done
  fi
fi

if [ "$failures" -ne 0 ]; then
  echo "check_package: $failures failure(s)" >&2
  exit 1
fi
echo "check_package: ok"
