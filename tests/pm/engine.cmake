# PM-2 / SCHED-1 (pm-engine): energy models, the engine, the governor, the
# simulator.  Pure computation: hand-computed cases, no processes.
if(TARGET thoth_pm)
  thoth_add_test(test_pm_energy SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_energy.c LIBS thoth_pm)
  thoth_add_test(test_pm_engine SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_engine.c LIBS thoth_pm)
endif()
