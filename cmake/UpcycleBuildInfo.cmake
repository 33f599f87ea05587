# Writes ${PROJECT_BINARY_DIR}/generated/core/build_info.h with the git sha and dirty flag at configure
# time and at every build (a custom target re-runs the script so a new commit changes the content keys).
set(UPCYCLE_BUILD_INFO_SCRIPT ${PROJECT_SOURCE_DIR}/cmake/write_build_info.cmake)
add_custom_target(upcycle_build_info
  COMMAND ${CMAKE_COMMAND} -DSRC=${PROJECT_SOURCE_DIR} -DOUT=${PROJECT_BINARY_DIR}/generated/core/build_info.h
          -DVERSION=${PROJECT_VERSION} -P ${UPCYCLE_BUILD_INFO_SCRIPT}
  BYPRODUCTS ${PROJECT_BINARY_DIR}/generated/core/build_info.h)
execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${PROJECT_SOURCE_DIR}
  -DOUT=${PROJECT_BINARY_DIR}/generated/core/build_info.h -DVERSION=${PROJECT_VERSION}
  -P ${UPCYCLE_BUILD_INFO_SCRIPT})
