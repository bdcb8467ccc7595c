#!/usr/bin/env python3
"""Python host for libomni_plugin.so through ctypes.

    python3 omni_host.py [--plugin PATH] [--socket PATH] [--image FILE]... "question"

The plugin: --plugin, else $OMNI_PLUGIN, else the first found of default_plugin()'s
places (an installed omnid, then this checkout's build/).
Streams the answer to stdout. The struct layouts below mirror plugin/include/omni_plugin.h
(ABI 1); the plugin reads only `struct_size` bytes of each input struct, so this host
keeps working with newer plugins.
"""
import argparse
import ctypes as C
import ctypes.util
import glob
import os
import subprocess
import sys

ABI_VERSION = 1
EVENT_TOKEN, EVENT_FINAL = 1, 2
IMAGE_ENCODED, IMAGE_RGB = 0, 1


class Image(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("format", C.c_uint32), ("data", C.c_void_p),
                ("size", C.c_size_t), ("path", C.c_char_p), ("width", C.c_uint32), ("height", C.c_uint32)]


class Request(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("max_tokens", C.c_uint32), ("prompt", C.c_char_p),
                ("images", C.POINTER(Image)), ("n_images", C.c_size_t), ("temperature", C.c_float),
                ("top_p", C.c_float), ("repetition_penalty", C.c_float), ("top_k", C.c_uint32),
                ("seed", C.c_uint64), ("greedy", C.c_int32), ("deadline_ms", C.c_uint32),
                ("stop", C.POINTER(C.c_char_p)), ("n_stop", C.c_size_t), ("request_id", C.c_uint64)]


class Event(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("kind", C.c_uint32), ("request_id", C.c_uint64),
                ("text", C.c_char_p), ("text_len", C.c_size_t), ("token_id", C.c_int64),
                ("status", C.c_int32), ("prompt_tokens", C.c_uint32), ("completion_tokens", C.c_uint32),
                ("image_tokens", C.c_uint32), ("finish_reason", C.c_char_p), ("error_message", C.c_char_p),
                ("total_ms", C.c_double)]


EVENT_FN = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(Event))


class Api(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("abi_version", C.c_uint32),
                ("version", C.CFUNCTYPE(C.c_char_p)),
                ("status_name", C.CFUNCTYPE(C.c_char_p, C.c_int32)),
                ("last_error", C.CFUNCTYPE(C.c_char_p)),
                ("request_init", C.CFUNCTYPE(None, C.POINTER(Request))),
                ("image_init", C.CFUNCTYPE(None, C.POINTER(Image))),
                ("client_create", C.CFUNCTYPE(C.c_int32, C.c_char_p, C.c_char_p, C.POINTER(C.c_void_p))),
                ("client_destroy", C.CFUNCTYPE(None, C.c_void_p)),
                ("new_request_id", C.CFUNCTYPE(C.c_uint64, C.c_void_p)),
                ("generate", C.CFUNCTYPE(C.c_int32, C.c_void_p, C.POINTER(Request), EVENT_FN, C.c_void_p)),
                ("cancel", C.CFUNCTYPE(C.c_int32, C.c_void_p, C.c_uint64)),
                ("status_json", C.CFUNCTYPE(C.c_int32, C.c_void_p, C.POINTER(C.c_void_p))),
                ("free_string", C.CFUNCTYPE(None, C.c_void_p))]


class OmniPlugin:
    def __init__(self, plugin_path, socket_path, name="python_host"):
        self._lib = C.CDLL(plugin_path, mode=os.RTLD_NOW | os.RTLD_LOCAL)
        entry = self._lib.omni_plugin_entry
        entry.restype = C.POINTER(Api)
        entry.argtypes = [C.c_uint32]
        api = entry(ABI_VERSION)
        if not api:
            raise RuntimeError("plugin does not support ABI %d" % ABI_VERSION)
        self.api = api.contents
        if self.api.struct_size < C.sizeof(Api):
            raise RuntimeError("plugin table too old")
        handle = C.c_void_p()
        rc = self.api.client_create(socket_path.encode(), name.encode(), C.byref(handle))
        if rc != 0:
            raise RuntimeError(self.api.last_error().decode())
        self.client = handle

    def ask(self, question, images=(), max_tokens=256, greedy=False, on_text=None):
        """Returns (status, finish_reason, text). on_text(piece) is called per token."""
        ims = (Image * max(1, len(images)))()
        keep = []
        for i, path in enumerate(images):
            self.api.image_init(C.byref(ims[i]))
            ims[i].format = IMAGE_ENCODED
            b = path.encode()
            keep.append(b)
            ims[i].path = b
        req = Request()
        self.api.request_init(C.byref(req))
        q = question.encode()
        req.prompt = q
        req.images = ims if images else None
        req.n_images = len(images)
        req.max_tokens = max_tokens
        req.greedy = 1 if greedy else 0
        out = {"text": [], "final": None}

        def cb(_user, ev_p):
            ev = ev_p.contents
            if ev.kind == EVENT_TOKEN:
                piece = C.string_at(ev.text, ev.text_len).decode("utf-8", "replace")
                out["text"].append(piece)
                if on_text:
                    on_text(piece)
            elif ev.kind == EVENT_FINAL:
                out["final"] = (ev.status, ev.finish_reason.decode(), ev.error_message.decode())

        fn = EVENT_FN(cb)  # keep alive during the call
        self.api.generate(self.client, C.byref(req), fn, None)
        status, reason, err = out["final"]
        return status, reason, "".join(out["text"]) if status == 0 else err

    def status(self):
        p = C.c_void_p()
        rc = self.api.status_json(self.client, C.byref(p))
        if rc != 0:
            raise RuntimeError(self.api.last_error().decode())
        try:
            return C.string_at(p).decode()
        finally:
            self.api.free_string(p)

    def close(self):
        if self.client:
            self.api.client_destroy(self.client)
            self.client = None


def default_plugin():
    """Where an installed plugin is, else the one this source checkout built."""
    here = os.path.dirname(os.path.abspath(__file__))
    # Installed by cmake --install into PREFIX/share/doc/omnid/examples/python_host/: the
    # plugin of that same PREFIX (lib/ or a multiarch lib/<triplet>/).
    tail = os.path.join("share", "doc", "omnid", "examples", "python_host")
    if here.endswith(os.sep + tail):
        prefix = here[: -len(tail) - 1]
        found = sorted(glob.glob(os.path.join(prefix, "lib", "libomni_plugin.so.*")) +
                       glob.glob(os.path.join(prefix, "lib", "*", "libomni_plugin.so.*")))
        if found:
            return found[0]
    # Installed system-wide (the .deb, or a prefix in ld.so.conf): the loader's cache.
    name = ctypes.util.find_library("omni_plugin")
    if name:
        return name
    # Installed elsewhere, with its pkgconfig folder on PKG_CONFIG_PATH.
    try:
        out = subprocess.run(["pkg-config", "--variable=plugin", "omni-plugin"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and os.path.isfile(out.stdout.strip()):
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    # This checkout's build tree (README: cmake -B build).
    built = os.path.join(here, "..", "..", "build", "lib", "libomni_plugin.so")
    if os.path.exists(built):
        return os.path.normpath(built)
    return "libomni_plugin.so"  # the dlopen search path; the error will name it


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plugin", default=os.environ.get("OMNI_PLUGIN") or None,
                    help="default: $OMNI_PLUGIN, else an installed plugin, else ../../build/lib")
    ap.add_argument("--socket", default=os.environ.get("OMNI_SOCKET", "/run/omnid/omnid.sock"))
    ap.add_argument("--image", action="append", default=[])
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--greedy", action="store_true")
    ap.add_argument("--status", action="store_true", help="print the daemon status JSON afterwards")
    ap.add_argument("question")
    a = ap.parse_args()
    p = OmniPlugin(a.plugin or default_plugin(), a.socket)
    try:
        status, reason, text = p.ask(a.question, a.image, a.max_tokens, a.greedy,
                                     on_text=lambda s: (sys.stdout.write(s), sys.stdout.flush()))
        sys.stdout.write("\n")
        if status != 0:
            sys.stderr.write("python_host: %s: %s\n" % (p.api.status_name(status).decode(), text))
            return 2
        if a.status:
            print(p.status())
        return 0
    finally:
        p.close()


if __name__ == "__main__":
    sys.exit(main())
