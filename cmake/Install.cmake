# Install rules: `cmake --install build --prefix P` for any P, and the staging tree of
# the Debian package (cmake/Packaging.cmake, prefix /usr).
#
#   P/bin/omnid, P/bin/omni
#   P/<libdir>/libomni_plugin.so.<ABI>, libomni_client.so.0 (+ the .so links for linkers)
#   P/<libdir>/omnid/            private libraries of omnid (omni_install_private_library)
#   P/<libdir>/pkgconfig/        omni-plugin.pc, omni-client.pc
#   P/include/omni/              omni_plugin.h, omni_client.h
#   P/lib/systemd/system/        omnid.service, omnid.socket
#   P/lib/sysusers.d/omnid.conf, P/lib/tmpfiles.d/omnid.conf
#   <sysconfdir>/omnid/omnid.toml  /etc for P = /usr (the GNU rule, install_prefix_files.cmake)
#   P/share/doc/omnid/           docs/*.md, README.md, the example hosts' sources
include(GNUInstallDirs)

set(OMNI_INSTALL_PRIVATE_LIBDIR ${CMAKE_INSTALL_LIBDIR}/omnid)

# --- Private shared libraries of omnid --------------------------------------------------
# Libraries only omnid loads (linked or dlopen'ed), kept out of the loader's search path
# so that they are no ABI promise: P/<libdir>/omnid, found through omnid's RUNPATH
# ($ORIGIN/../<libdir>/omnid) and, among themselves, through $ORIGIN.
# libomni_kernels.so is linked by omnid; kernels/backend_registry.cpp dlopens the backends
# (libomni_backend_cuda.so, libomni_backend_nccl.so) from the folder libomni_kernels.so
# was loaded from, so they must lie beside it.
# OPTIONAL_BACKEND: the package must not depend on what the library links (cudart,
# cuBLAS, NCCL): cmake/Packaging.cmake leaves those files out of dpkg-shlibdeps' scan.
# A static library is part of the programs: nothing to install.
set_property(GLOBAL PROPERTY OMNI_OPTIONAL_BACKEND_FILES "")
function(omni_install_private_library target)
  cmake_parse_arguments(arg "OPTIONAL_BACKEND" "" "" ${ARGN})
  get_target_property(_type ${target} TYPE)
  if(NOT _type STREQUAL "SHARED_LIBRARY" AND NOT _type STREQUAL "MODULE_LIBRARY")
    return()
  endif()
  set_target_properties(${target} PROPERTIES INSTALL_RPATH "$ORIGIN")
  install(TARGETS ${target}
          LIBRARY DESTINATION ${OMNI_INSTALL_PRIVATE_LIBDIR} NAMELINK_SKIP)
  if(arg_OPTIONAL_BACKEND)
    set_property(GLOBAL APPEND PROPERTY OMNI_OPTIONAL_BACKEND_FILES
                 "${OMNI_INSTALL_PRIVATE_LIBDIR}/$<TARGET_FILE_NAME:${target}>")
  endif()
endfunction()

# === omnid's private libraries ===========================================================
omni_install_private_library(omni_kernels)
foreach(_backend omni_backend_cuda omni_backend_nccl)   # built only with CUDA (kernels/cuda/)
  if(TARGET ${_backend})
    omni_install_private_library(${_backend} OPTIONAL_BACKEND)
  endif()
endforeach()
# =========================================================================================

# --- Programs -----------------------------------------------------------------------------
set_target_properties(omnid PROPERTIES INSTALL_RPATH "$ORIGIN/../${OMNI_INSTALL_PRIVATE_LIBDIR}")
install(TARGETS omnid omni RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# --- Libraries for hosts and clients, their headers and pkg-config files -------------------
install(TARGETS omni_plugin omni_client LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/plugin/include/omni_plugin.h ${PROJECT_SOURCE_DIR}/sdk/include/omni_client.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/omni)

# The .pc files locate the prefix from their own folder (${pcfiledir}): the relative
# way up from <libdir>/pkgconfig to the prefix, or absolute paths where a dir is absolute.
set(_pcdir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(OMNI_PC_UP ".")
  set(OMNI_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(OMNI_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  string(REGEX REPLACE "[^/]+" ".." OMNI_PC_UP "${_pcdir}")
  set(OMNI_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(OMNI_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
set(OMNI_PC_DL_LIBS "")
foreach(_l ${CMAKE_DL_LIBS})
  string(APPEND OMNI_PC_DL_LIBS "-l${_l} ")
endforeach()
foreach(_pc omni-plugin omni-client)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/pkgconfig/${_pc}.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/${_pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/${_pc}.pc DESTINATION ${_pcdir})
endforeach()

# --- systemd units, sysusers.d, tmpfiles.d, the sample config ----------------------------
# These name absolute paths of the prefix they are installed into (ExecStart=, the config
# in /etc), which is known only when installing (`--prefix P`, or CPack's /usr): they are
# written by cmake/install_prefix_files.cmake at install time.
install(CODE "
  set(OMNI_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
  set(OMNI_BINARY_DIR \"${PROJECT_BINARY_DIR}\")
  set(OMNI_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(OMNI_DOCDIR \"${CMAKE_INSTALL_DOCDIR}\")
  include(\"${PROJECT_SOURCE_DIR}/cmake/install_prefix_files.cmake\")
")

# --- Documentation -------------------------------------------------------------------------
file(GLOB _docs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${_docs} ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The example hosts as sources, to build against the installed headers (c_host.c says how).
install(FILES ${PROJECT_SOURCE_DIR}/examples/c_host/c_host.c DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/c_host)
install(FILES ${PROJECT_SOURCE_DIR}/examples/workflow_host/workflow_host.cpp
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/workflow_host)
install(PROGRAMS ${PROJECT_SOURCE_DIR}/examples/python_host/omni_host.py
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/python_host)
