# thothd under attack and after crashes (issue 11, items 6-12): hostile
# clients in Python against the control socket (thothd_hostile.py) and real
# service processes (test_thothd_endpoints.c).  `make soak` runs the same
# scenarios longer (SOAK_SECONDS).
if(NOT TARGET thothd OR NOT TARGET thothctl OR NOT TARGET echo)
  message(FATAL_ERROR "tests/reliability/thothd.cmake needs thothd, thothctl and echo")
endif()

set(_sanitized "")
if(THOTH_SANITIZE)
  set(_sanitized --sanitized)
endif()
foreach(scenario idle partial fdlimit detach crash)
  set(_name test_thothd_hostile_${scenario})
  add_test(NAME ${_name}
    COMMAND ${THOTH_PYTHON3_EXE} ${CMAKE_CURRENT_SOURCE_DIR}/thothd_hostile.py ${scenario}
      --thothd $<TARGET_FILE:thothd> --thothctl $<TARGET_FILE:thothctl>
      --service $<TARGET_FILE:echo> ${_sanitized})
  thoth_test_timeout(240 ${_name})
  set_tests_properties(${_name} PROPERTIES LABELS "reliability"
    FAIL_REGULAR_EXPRESSION "FAILED:")
endforeach()

thoth_add_test(test_thothd_endpoints
    SOURCES test_thothd_endpoints.c
    LIBS thoth_test_harness thoth_service TIMEOUT 180)
target_include_directories(test_thothd_endpoints PRIVATE ${CMAKE_SOURCE_DIR}/tests/thothd
  ${CMAKE_SOURCE_DIR}/tests/common)
target_compile_definitions(test_thothd_endpoints PRIVATE
  THOTHD_PATH="$<TARGET_FILE:thothd>" ECHO_PATH="$<TARGET_FILE:echo>"
  THOTHCTL_PATH="$<TARGET_FILE:thothctl>")
add_dependencies(test_thothd_endpoints thothd echo thothctl)
