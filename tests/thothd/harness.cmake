# thoth_test_harness: tests/thothd's harness (a thothd of its own in a
# temporary runtime dir, harness.h) and its live-dashboard helpers
# (live_harness.h), compiled once per build for every test and benchmark
# that starts a thothd.  Each of them used to list the .c files among its
# own sources: one file compiled 30, 29 and 4 times in make test's plain,
# ASan and TSan builds.
# Included from the top CMakeLists.txt (bench/ uses it without tests/).
add_library(thoth_test_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/harness.c
            ${CMAKE_CURRENT_LIST_DIR}/live_harness.c)
target_include_directories(thoth_test_harness PUBLIC ${CMAKE_CURRENT_LIST_DIR})
# The thothd it starts is this build's.
target_compile_definitions(thoth_test_harness PRIVATE THOTHD_PATH="$<TARGET_FILE:thothd>")
target_link_libraries(thoth_test_harness PUBLIC thoth_service thoth_loop thoth_trace Threads::Threads)
add_dependencies(thoth_test_harness thothd)
