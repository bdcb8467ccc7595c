# CPACK_PRE_BUILD_SCRIPTS of cmake/Packaging.cmake: runs in CPack after the staging tree
# is installed, before CPackDeb computes the package's dependencies.
#
# CPackDeb hands every ELF file of the package to dpkg-shlibdeps. An optional backend
# (the CUDA one, dlopen'ed only where the CUDA runtime is) must not add its libraries to
# Depends, so when the staging tree holds one, this script runs dpkg-shlibdeps over the
# other ELF files itself, puts the result in CPACK_DEBIAN_PACKAGE_DEPENDS and turns
# CPackDeb's own run off. Without one (a build without CUDA) CPackDeb does it all.
set(_stage "${CPACK_TEMPORARY_DIRECTORY}")
set(_private "${_stage}${CPACK_PACKAGING_INSTALL_PREFIX}/${CPACK_OMNI_PRIVATE_LIBDIR}")
# omnid's private folder in the staging tree (only now known), for dpkg-shlibdeps -l.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS "${_private}")
set(_optional "")
if(EXISTS "${CPACK_OMNI_OPTIONAL_BACKENDS_LIST}")
  file(STRINGS "${CPACK_OMNI_OPTIONAL_BACKENDS_LIST}" _names)
  foreach(_n IN LISTS _names)
    if(_n AND EXISTS "${_stage}${CPACK_PACKAGING_INSTALL_PREFIX}/${_n}")
      list(APPEND _optional "${CPACK_PACKAGING_INSTALL_PREFIX}/${_n}")
    endif()
  endforeach()
endif()
if(NOT _optional)
  return()
endif()
message(STATUS "omnid: optional backends left out of dpkg-shlibdeps: ${_optional}")

file(GLOB_RECURSE _files LIST_DIRECTORIES false RELATIVE "${_stage}" "${_stage}/*")
set(_elf "")
foreach(_f IN LISTS _files)
  list(FIND _optional "/${_f}" _i)   # not IN_LIST: CPack runs this without policy CMP0057
  if(_i GREATER -1)
    continue()
  endif()
  execute_process(COMMAND env LC_ALL=C file "./${_f}" WORKING_DIRECTORY "${_stage}" OUTPUT_VARIABLE _what)
  if(_what MATCHES "ELF.*dynamically linked")
    list(APPEND _elf "./${_f}")
  endif()
endforeach()
# dpkg-shlibdeps wants debian/control and DEBIAN/ (for $ORIGIN) in its working folder;
# both go again before the tree is packed (CPackDeb's own run is off now).
file(MAKE_DIRECTORY "${_stage}/debian" "${_stage}/DEBIAN")
file(WRITE "${_stage}/debian/control" "")
execute_process(COMMAND env LC_ALL=C dpkg-shlibdeps --ignore-missing-info "-l${_private}" -O ${_elf}
                WORKING_DIRECTORY "${_stage}" RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
file(REMOVE_RECURSE "${_stage}/debian" "${_stage}/DEBIAN")
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "omnid: dpkg-shlibdeps failed: ${_err}")
endif()
string(REGEX REPLACE "^.*Depends=" "" _deps "${_out}")
string(STRIP "${_deps}" _deps)
if(CPACK_DEBIAN_PACKAGE_DEPENDS)
  set(_deps "${_deps}, ${CPACK_DEBIAN_PACKAGE_DEPENDS}")
endif()
set(CPACK_DEBIAN_PACKAGE_DEPENDS "${_deps}")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)
