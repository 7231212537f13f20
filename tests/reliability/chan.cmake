# Channels against hostile peers (issue 11 items 1, 2, 3, 5 and the channel
# half of 7 and 9; docs/RELIABILITY.md "Channels").  Real processes: the
# service is tests/ipc's chan_service, the hostile peers are C against the
# channel internals.
if(NOT TARGET thoth_channel OR NOT TARGET chan_service)
  return()
endif()
foreach(t test_chan_hostile_wakeups test_chan_bells test_chan_bell_probe test_chan_fairness test_chan_limits test_chan_socket_policy)
  thoth_add_test(${t} SOURCES ${CMAKE_CURRENT_LIST_DIR}/${t}.c LIBS thoth_channel test_chantest_idl)
  target_compile_definitions(${t} PRIVATE CHAN_SERVICE="$<TARGET_FILE:chan_service>")
  add_dependencies(${t} chan_service)
  target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/tests/common)
endforeach()

# The trace buffer a process hands to thothd, against a fake thothd.
thoth_add_test(test_chan_trace_fake_thothd
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_chan_trace_fake_thothd.c
  LIBS thoth_service thoth_trace thoth_wire)
target_include_directories(test_chan_trace_fake_thothd PRIVATE ${CMAKE_SOURCE_DIR}/kernel/observability
  ${CMAKE_SOURCE_DIR}/kernel/ipc)

# The fairness test compares an innocent client's latency with and without a
# flooder: other tests running beside it on a 2-CPU machine would measure
# them, not the service.  CTest runs it alone.
set_tests_properties(test_chan_fairness PROPERTIES RUN_SERIAL TRUE)
