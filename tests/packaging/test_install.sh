#!/usr/bin/env bash
# `cmake --install` into a temporary prefix, then, from that prefix only:
#  - examples/c_host/c_host.c (its installed copy) built against the installed header with
#    `pkg-config --cflags --libs omni-plugin`, its default plugin the installed one
#    (`pkg-config --variable=plugin`);
#  - a small C program built against libomni_client with `pkg-config omni-client`;
#  - the installed omnid serving the demo model;
# and the host, run with no OMNI_PLUGIN, must answer the demo picture ("circle"), the C
# client must read the daemon's status, and the installed Python host must find the
# installed plugin by itself. Exit 77 (SKIPPED) when something it needs is missing.
#   test_install.sh BUILD_DIR SOURCE_DIR LIBDIR C_COMPILER [sanitized|plain]
set -euo pipefail
build="$1" src="$2" libdir="$3" cc="${4:-cc}"

skip() { echo "SKIPPED: $*"; exit 77; }
[ "${5:-plain}" = sanitized ] && skip "a sanitizer build: a plain host cannot load its plugin (needs the sanitizer runtime first)"
model="$src/models/shapes"
picture="$src/tests/data/shapes/demo.png"
[ -f "$model/model.safetensors" ] || skip "no demo model at $model"
[ -f "$picture" ] || skip "no demo picture at $picture"
command -v pkg-config >/dev/null 2>&1 || skip "pkg-config not installed"
for t in omnid omni; do [ -x "$build/bin/$t" ] || skip "$t not built in $build"; done

tmp="$(mktemp -d)"
daemon=""
cleanup() {
  if [ -n "$daemon" ]; then
    kill -TERM "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
die() { echo "FAIL: $*" >&2; for f in "$tmp"/*.log; do [ -s "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done; exit 1; }

prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || die "cmake --install $build --prefix $prefix"

# Only the installed tree from here on: no source or build paths on any command line.
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
unset OMNI_PLUGIN OMNI_SOCKET LD_LIBRARY_PATH
plugin="$(pkg-config --variable=plugin omni-plugin)" || die "pkg-config omni-plugin"
[ -f "$plugin" ] || die "pkg-config --variable=plugin omni-plugin names $plugin, which is not installed"
case "$(readlink -f "$plugin")" in "$(readlink -f "$prefix")"/*) ;; *) die "plugin $plugin is not under $prefix" ;; esac

# shellcheck disable=SC2046  # pkg-config's output is meant to be split into words
"$cc" -std=c11 -Wall -Wextra -Werror -o "$tmp/c_host" "$prefix/share/doc/omnid/examples/c_host/c_host.c" \
  $(pkg-config --cflags --libs omni-plugin) -DOMNI_PLUGIN_DEFAULT="\"$plugin\"" >"$tmp/cc_host.log" 2>&1 ||
  die "building c_host.c against the installed omni-plugin"

cat >"$tmp/client.c" <<'C'
#include <stdio.h>
#include <omni_client.h>
int main(int argc, char** argv) {
  omni_client* c = NULL;
  char* json = NULL;
  if (argc != 2 || omni_client_create(argv[1], "packaging-test", &c) != OMNI_OK) return 1;
  const omni_status s = omni_client_status_json(c, &json);
  if (s != OMNI_OK) { fprintf(stderr, "status: %s: %s\n", omni_status_name(s), omni_last_error()); return 2; }
  puts(json);
  omni_string_free(json);
  omni_client_destroy(c);
  return 0;
}
C
# The library is found at run time through the RUNPATH given here (the prefix is no
# system folder).
# shellcheck disable=SC2046
"$cc" -std=c11 -Wall -Wextra -Werror -o "$tmp/client" "$tmp/client.c" $(pkg-config --cflags --libs omni-client) \
  -Wl,-rpath,"$(pkg-config --variable=libdir omni-client)" >"$tmp/cc_client.log" 2>&1 ||
  die "building a C program against the installed omni-client"

socket="$tmp/omnid.sock"
"$prefix/bin/omnid" serve --model "$model" --socket "$socket" --devices cpu:0 >"$tmp/omnid.log" 2>&1 &
daemon=$!
for _ in $(seq 1 300); do
  [ -S "$socket" ] && break
  kill -0 "$daemon" 2>/dev/null || die "the installed omnid exited before serving"
  sleep 0.1
done
[ -S "$socket" ] || die "the installed omnid did not create $socket within 30 s"

answer="$("$tmp/c_host" --socket "$socket" --image "$picture" --greedy --max-tokens 16 "What shape is this?" \
  2>"$tmp/c_host.log")" || die "c_host (installed plugin, no OMNI_PLUGIN) failed"
echo "c_host: $answer"
grep -qi circle <<<"$answer" || die "c_host answered '$answer', expected a circle"

status="$("$tmp/client" "$socket" 2>"$tmp/client.log")" || die "the C client could not read the status"
grep -q '"active_requests"' <<<"$status" || die "the status has no active_requests: $status"

if command -v python3 >/dev/null 2>&1; then
  py="$(python3 "$prefix/share/doc/omnid/examples/python_host/omni_host.py" --socket "$socket" \
    --image "$picture" --greedy --max-tokens 16 "What shape is this?" 2>"$tmp/python_host.log")" ||
    die "the installed Python host failed"
  echo "python_host: $py"
  grep -qi circle <<<"$py" || die "the Python host answered '$py', expected a circle"
else
  echo "python3 not installed: the Python host is not checked"
fi
echo "ok"
