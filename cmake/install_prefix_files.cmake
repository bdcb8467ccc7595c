# Run at install time (install(CODE) in cmake/Install.cmake), when the prefix is known:
# CMAKE_INSTALL_PREFIX is then `--prefix P`, or /usr inside CPack (which installs with
# DESTDIR set: cmake/Packaging.cmake). Writes the files that name absolute paths of that
# prefix. Inputs: OMNI_SOURCE_DIR, OMNI_BINARY_DIR, OMNI_BINDIR, OMNI_DOCDIR.
set(_prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "(.)/+$" "\\1" _prefix "${_prefix}")

# GNUInstallDirs' rule for the configuration folder: /etc for the prefixes / and /usr,
# /etc/opt/NAME for /opt/NAME, PREFIX/etc otherwise.
if(_prefix STREQUAL "/" OR _prefix STREQUAL "/usr")
  set(_sysconfdir "/etc")
elseif(_prefix MATCHES "^/opt/")
  set(_sysconfdir "/etc${_prefix}")
else()
  set(_sysconfdir "${_prefix}/etc")
endif()
if(_prefix STREQUAL "/")
  set(_prefix "")   # /bin, /lib/systemd/system: no double slash
endif()

# What the templates name (the same names as in daemon/systemd/*.in).
set(OMNI_BINDIR "${_prefix}/${OMNI_BINDIR}")
set(OMNI_DOCDIR "${_prefix}/${OMNI_DOCDIR}")
set(OMNI_SYSCONFDIR "${_sysconfdir}")

# One folder per destination: a `cmake --install` and a cpack may run at once.
string(MD5 _key "$ENV{DESTDIR}|${_prefix}")
set(_gen "${OMNI_BINARY_DIR}/install-generated/${_key}")
set(_src "${OMNI_SOURCE_DIR}/daemon/systemd")
configure_file("${_src}/omnid.service.in" "${_gen}/omnid.service" @ONLY)
configure_file("${_src}/omnid.socket" "${_gen}/omnid.socket" @ONLY)
configure_file("${_src}/omnid.sysusers" "${_gen}/sysusers/omnid.conf" COPYONLY)
configure_file("${_src}/omnid.tmpfiles" "${_gen}/tmpfiles/omnid.conf" COPYONLY)

# systemd's own folders sit under lib/, never a multiarch libdir. file(INSTALL) adds
# DESTDIR and records each file in install_manifest.txt.
file(INSTALL "${_gen}/omnid.service" "${_gen}/omnid.socket" DESTINATION "${_prefix}/lib/systemd/system"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${_gen}/sysusers/omnid.conf" DESTINATION "${_prefix}/lib/sysusers.d"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${_gen}/tmpfiles/omnid.conf" DESTINATION "${_prefix}/lib/tmpfiles.d"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# The sample config. An existing one is an administrator's: left alone, with the new
# sample put beside it as omnid.toml.dist (the package's conffile handling does the same
# job for the .deb, whose staging tree never has one).
set(_conf "$ENV{DESTDIR}${_sysconfdir}/omnid/omnid.toml")
if(EXISTS "${_conf}")
  message(STATUS "Keeping: ${_conf} (new sample: omnid.toml.dist)")
  file(MAKE_DIRECTORY "${_gen}/dist")
  configure_file("${_src}/omnid.toml" "${_gen}/dist/omnid.toml.dist" COPYONLY)
  file(INSTALL "${_gen}/dist/omnid.toml.dist" DESTINATION "${_sysconfdir}/omnid"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
else()
  file(INSTALL "${_src}/omnid.toml" DESTINATION "${_sysconfdir}/omnid"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
