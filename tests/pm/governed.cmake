# SCHED-1 live: a real service process whose dispatch drives the frequency
# of its performance domain (kernel/pm/governed.h), on a fixture copy.
if(TARGET thoth_pm AND TARGET thoth_channel AND TARGET thoth_idl)
  add_executable(governed_service ${CMAKE_CURRENT_LIST_DIR}/governed_service.c)
  target_link_libraries(governed_service PRIVATE thoth_pm thoth_channel thoth_idl)
  thoth_add_test(test_pm_governed SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_governed.c
                 LIBS thoth_channel thoth_idl thoth_trace TIMEOUT 60)
  target_compile_definitions(test_pm_governed PRIVATE
    GOVERNED_SERVICE_PATH="$<TARGET_FILE:governed_service>"
    FIXTURES="${CMAKE_SOURCE_DIR}/tests/fixtures/sysfs")
  add_dependencies(test_pm_governed governed_service)
  # the service's loop thread and its watcher (governed.h) share the
  # governor: also a concurrency test (label tsan, `make tsan`)
  set_tests_properties(test_pm_governed PROPERTIES RUN_SERIAL TRUE LABELS tsan)
endif()
