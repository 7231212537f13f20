# tests/reliability/client.cmake - clients and services against thothd
# (issue 11 items 4 and 13, issue 13 section 0): squatters, idle cost,
# thothd restarts.  Real processes in temp runtime dirs.
thoth_add_test(test_client_unixsock SOURCES test_client_unixsock.c client_squatter.c
               LIBS thoth_stream TIMEOUT 60)   # unixsock.c is in thoth_stream
target_include_directories(test_client_unixsock PRIVATE ${CMAKE_SOURCE_DIR}/kernel/ipc)

# The registry (thothd's, pure): local registrations held by their connection.
if(TARGET thoth_registry)
  thoth_add_test(test_client_registry_held SOURCES test_client_registry_held.c LIBS thoth_registry)
endif()

if(TARGET thoth_service AND TARGET thothctl)
  thoth_add_test(test_client_squatter SOURCES test_client_squatter.c client_squatter.c
                 LIBS thoth_service TIMEOUT 60)
  target_compile_definitions(test_client_squatter PRIVATE THOTHCTL_PATH="$<TARGET_FILE:thothctl>")
  add_dependencies(test_client_squatter thothctl)
endif()

# Multi-process: real thothd, echo services and clients (tests/thothd's harness).
if(TARGET thothd AND TARGET echo AND TARGET echo-client)
  add_executable(client_helper client_helper.c)
  target_link_libraries(client_helper PRIVATE thoth_service)

  function(client_process_test name)
    thoth_add_test(${name} SOURCES ${name}.c
                   LIBS thoth_test_harness thoth_test_client_proc thoth_service TIMEOUT 120)
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/thothd ${CMAKE_SOURCE_DIR}/tests/common)
    target_compile_definitions(${name} PRIVATE
      THOTHD_PATH="$<TARGET_FILE:thothd>" ECHO_PATH="$<TARGET_FILE:echo>"
      ECHO_CLIENT_PATH="$<TARGET_FILE:echo-client>" CLIENT_HELPER_PATH="$<TARGET_FILE:client_helper>")
    add_dependencies(${name} thothd echo echo-client client_helper)
  endfunction()

  client_process_test(test_client_idle)
endif()
if(TARGET thothd AND TARGET echo AND TARGET echo-client)
  client_process_test(test_client_restart)
  client_process_test(test_client_resolver)
  target_link_libraries(test_client_restart PRIVATE thoth_channel thoth_idl)
endif()

# Issue 12: no stderr, no signal dispositions from the library.
if(TARGET thoth_service AND TARGET thoth_channel)
  thoth_add_test(test_client_log SOURCES test_client_log.c LIBS thoth_service thoth_channel thoth_idl
                 TIMEOUT 60)
  # thoth__log's and thoth__why_text_cut's cut lines (kernel/ipc, internal)
  target_include_directories(test_client_log PRIVATE ${PROJECT_SOURCE_DIR}/kernel/ipc)
endif()

# The crash drill's SIGSTOP step (docs/OPERATIONS.md): one of two echo
# instances stopped under echo-client's load, then continued (ops44).
if(TARGET thothd AND TARGET thothctl AND TARGET echo AND TARGET echo-client)
  add_test(NAME test_client_stopped_instance
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_client_stopped_instance.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(test_client_stopped_instance PROPERTIES SKIP_RETURN_CODE 77)
  thoth_test_timeout(150 test_client_stopped_instance)
endif()
