# The Debian package: `cpack -G DEB` in the build folder (or
# `cpack -G DEB --config build/CPackConfig.cmake`) makes one package, omnid, for CPU-only
# and GPU machines. What it holds: cmake/Install.cmake. scripts/check_package.sh builds
# and checks it.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME omnid)
set(CPACK_PACKAGE_VENDOR "omnid")
set(CPACK_PACKAGE_CONTACT "omnid maintainers <omnid@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "MiniCPM-V inference daemon, its client library and host plugin")
set(CPACK_PACKAGE_DESCRIPTION
    "omnid keeps a MiniCPM-V vision-language model resident, spread over the machine's devices, and answers local clients over a Unix socket (and optionally an OpenAI-compatible HTTP API). The package also holds the omni client, libomni_client (C API), libomni_plugin for hosts, their headers and pkg-config files, and the systemd units. The CUDA backend, where built, is loaded only when the CUDA runtime is present.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)   # omnid_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_STRIP_FILES ON)   # the build keeps line tables (-g1); the package does not need them

# CPack installs with DESTDIR=<staging> and CMAKE_INSTALL_PREFIX=/usr, so that the
# install-time prefix is the real one: ExecStart= names /usr/bin/omnid and the config
# lands in /etc (cmake/install_prefix_files.cmake), inside the staging tree.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)

# Dependencies from the ELF files (dpkg-shlibdeps). omnid's private folder is searched
# for the libraries it links from there. The optional backends (the CUDA one) are left
# out of the scan, or the package would depend on cudart, cuBLAS and NCCL and not
# install on a CPU-only machine: cmake/cpack_shlibdeps.cmake runs dpkg-shlibdeps itself
# without them when the staging tree holds one. What they need is named in
# docs/operations.md (Install), not in the package's relations.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)   # the private folder (-l): set by cpack_shlibdeps.cmake
get_property(_optional GLOBAL PROPERTY OMNI_OPTIONAL_BACKEND_FILES)
file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/cpack/optional_backends.txt CONTENT "$<JOIN:${_optional},\n>\n")
set(CPACK_OMNI_OPTIONAL_BACKENDS_LIST ${PROJECT_BINARY_DIR}/cpack/optional_backends.txt)
set(CPACK_OMNI_PRIVATE_LIBDIR ${OMNI_INSTALL_PRIVATE_LIBDIR})
set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/cmake/cpack_shlibdeps.cmake)
# systemd-sysusers and systemd-tmpfiles run from postinst when present (else useradd).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")

# Maintainer scripts (debhelper's snippets, written out: cmake/debian/) and the
# conffile list. Only /etc/omnid/omnid.toml is a conffile; the units are the package's.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/cmake/debian/postinst
    ${PROJECT_SOURCE_DIR}/cmake/debian/prerm
    ${PROJECT_SOURCE_DIR}/cmake/debian/postrm
    ${PROJECT_SOURCE_DIR}/cmake/debian/conffiles
    ${PROJECT_SOURCE_DIR}/cmake/debian/triggers)   # ldconfig for the libraries in /usr/lib
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

include(CPack)
