# tests/reliability/client.cmake - clients and services against thothd
# (issue 11 items 4 and 13, issue 13 section 0): squatters, idle cost,
# thothd restarts.  Real processes in temp runtime dirs.
thoth_add_test(test_client_unixsock SOURCES test_client_unixsock.c client_squatter.c
               LIBS thoth_wire TIMEOUT 60)
target_include_directories(test_client_unixsock PRIVATE ${CMAKE_SOURCE_DIR}/kernel/ipc)
