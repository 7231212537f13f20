# OBS-3 with SCHED-1: a governed service's PM trace points priced with the
# published CPU models and this machine's own energy model, read from a
# fixture sysfs tree (kernel/pm/power_account.h, trace_model.h): a scripted
# event sequence against hand-computed figures.
if(TARGET thoth_pm)
  thoth_add_test(test_pm_power_account SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_power_account.c
                 LIBS thoth_pm)
  target_compile_definitions(test_pm_power_account PRIVATE
    FIXTURES="${CMAKE_SOURCE_DIR}/tests/fixtures/sysfs")
endif()
