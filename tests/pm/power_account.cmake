# OBS-3 with SCHED-1: a governed service's PM trace points priced with the
# published CPU models (kernel/pm/power_account.h).  Pure computation:
# a scripted event sequence against hand-computed figures.
if(TARGET thoth_pm)
  thoth_add_test(test_pm_power_account SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_power_account.c
                 LIBS thoth_pm)
endif()
