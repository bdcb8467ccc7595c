# omni_version.h (in the build folder's generated/): the project version, the git revision
# and the backends built, for `omnid --version` and `omni --version`. The revision is read
# at every build by cmake/write_version.cmake, which rewrites the header only when it
# changed, so an unchanged tree rebuilds nothing.
set(_omni_backends cpu)
if(TARGET omni_backend_cuda)
  list(APPEND _omni_backends cuda)
endif()
if(TARGET omni_backend_nccl)
  list(APPEND _omni_backends nccl)
endif()
list(JOIN _omni_backends " " _omni_backends)
set(OMNI_VERSION_HEADER ${CMAKE_BINARY_DIR}/generated/omni_version.h)
add_custom_target(omni_version_header
  COMMAND ${CMAKE_COMMAND} -DOUT=${OMNI_VERSION_HEADER} -DVERSION=${PROJECT_VERSION}
          -DSOURCE_DIR=${PROJECT_SOURCE_DIR} "-DBACKENDS=${_omni_backends}"
          -P ${PROJECT_SOURCE_DIR}/cmake/write_version.cmake
  BYPRODUCTS ${OMNI_VERSION_HEADER}
  COMMENT "" VERBATIM)
add_library(omni_version INTERFACE)
target_include_directories(omni_version INTERFACE ${CMAKE_BINARY_DIR}/generated)
# Every target that includes omni_version.h waits for it (an interface library cannot).
function(omni_uses_version target)
  target_link_libraries(${target} PRIVATE omni_version)
  add_dependencies(${target} omni_version_header)
endfunction()
