# tests/reliability/chaos.cmake - SIGKILL at random moments of a whole
# system under load (thothd, echo, examples/kv, codex, a PM driver and
# lease holder, a trace session): nothing acknowledged lost, no call hung,
# nothing leaked (test_chaos.c).  THOTH_CHAOS_SEED replays a run,
# THOTH_CHAOS_SECONDS makes it longer than the 12 s default (tests/reliability/soak-chaos.sh).
if(TARGET thothd AND TARGET thothctl AND TARGET echo AND TARGET kv-service AND TARGET codex
   AND TARGET pm-sim-driver)
  add_executable(chaos_client chaos_client.c)
  target_link_libraries(chaos_client PRIVATE thoth_channel thoth_service thoth_idl example_kv_idl)

  thoth_add_test(test_chaos SOURCES test_chaos.c
                 LIBS thoth_test_harness thoth_test_client_proc thoth_service thoth_idl TIMEOUT 200)
  target_include_directories(test_chaos PRIVATE ${CMAKE_SOURCE_DIR}/tests/thothd ${CMAKE_SOURCE_DIR}/tests/common)
  target_compile_definitions(test_chaos PRIVATE
    THOTHD_PATH="$<TARGET_FILE:thothd>" THOTHCTL_PATH="$<TARGET_FILE:thothctl>" ECHO_PATH="$<TARGET_FILE:echo>"
    KV_SERVICE_PATH="$<TARGET_FILE:kv-service>" CODEX_PATH="$<TARGET_FILE:codex>"
    PM_SIM_DRIVER_PATH="$<TARGET_FILE:pm-sim-driver>" CHAOS_CLIENT_PATH="$<TARGET_FILE:chaos_client>")
  add_dependencies(test_chaos thothd thothctl echo kv-service codex pm-sim-driver chaos_client)
  set_tests_properties(test_chaos PROPERTIES LABELS "reliability")
endif()
