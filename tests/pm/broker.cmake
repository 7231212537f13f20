# PM-1: the power broker core (unit), thothd's PowerBroker, driver services
# and sysfs backends (multi-process and fixture trees).
if(TARGET thoth_pm)
  thoth_add_test(test_pm_broker SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_broker.c LIBS thoth_pm)
  # White-box: the broker's source included, its counts changed behind its
  # back (thoth_pm_broker_check must find a drift that keeps the total).
  thoth_add_test(test_pm_broker_counts SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_broker_counts.c LIBS thoth_pm)
  # The sysfs backends on the fixture trees (never the host's knobs).
  thoth_add_test(test_pm_backends SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_backends.c LIBS thoth_pm)
  target_compile_definitions(test_pm_backends PRIVATE
    FIXTURES="${CMAKE_SOURCE_DIR}/tests/fixtures/sysfs")
endif()

# PowerBroker through a real thothd with real simulated driver processes.
if(TARGET thothd AND TARGET pm-sim-driver AND TARGET pm-runtime-driver AND TARGET thothctl)
  thoth_add_test(test_pm_thothd SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_thothd.c
                 LIBS thoth_test_harness thoth_service thoth_idl TIMEOUT 120)
  # timerpage.h: the test posts wake-ups on thothd's window page as a loop would.
  target_include_directories(test_pm_thothd PRIVATE ${CMAKE_SOURCE_DIR}/tests/thothd
    ${CMAKE_SOURCE_DIR}/kernel/sched)
  target_link_libraries(test_pm_thothd PRIVATE thoth_loop)
  target_compile_definitions(test_pm_thothd PRIVATE THOTHD_PATH="$<TARGET_FILE:thothd>"
    PM_SIM_DRIVER_PATH="$<TARGET_FILE:pm-sim-driver>"
    PM_RUNTIME_DRIVER_PATH="$<TARGET_FILE:pm-runtime-driver>"
    THOTHCTL_PATH="$<TARGET_FILE:thothctl>" THOTH_PYTHON3="${THOTH_PYTHON3_EXE}"
    FIXTURES="${CMAKE_SOURCE_DIR}/tests/fixtures/sysfs")
  add_dependencies(test_pm_thothd thothd pm-sim-driver pm-runtime-driver thothctl)
endif()
