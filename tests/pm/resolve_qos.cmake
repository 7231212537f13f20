# PM-2: a latency bound attached to a resolve (PowerBroker.service_qos,
# thoth_resolver_set_qos) through a real thothd, real sim drivers serving a
# service and a real client process (killed with -9), by a resolver or a
# thoth_pool (thoth_pool_set_qos).
if(TARGET thothd AND TARGET pm-sim-driver)
  add_executable(pm_qos_client ${CMAKE_CURRENT_LIST_DIR}/pm_qos_client.c)
  target_link_libraries(pm_qos_client PRIVATE thoth_service thoth_channel thoth_idl thoth_loop)
  thoth_add_test(test_pm_resolve_qos SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_resolve_qos.c
                 LIBS thoth_test_harness thoth_service thoth_idl thoth_loop TIMEOUT 120)
  target_include_directories(test_pm_resolve_qos PRIVATE ${CMAKE_SOURCE_DIR}/tests/thothd)
  target_compile_definitions(test_pm_resolve_qos PRIVATE THOTHD_PATH="$<TARGET_FILE:thothd>"
    PM_SIM_DRIVER_PATH="$<TARGET_FILE:pm-sim-driver>"
    PM_QOS_CLIENT_PATH="$<TARGET_FILE:pm_qos_client>")
  add_dependencies(test_pm_resolve_qos thothd pm-sim-driver pm_qos_client)
endif()
