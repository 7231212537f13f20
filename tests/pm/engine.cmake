# PM-2 / SCHED-1 (pm-engine): energy models, the engine, the governor, the
# simulator.  Pure computation: hand-computed cases, no processes.
if(TARGET thoth_pm)
  thoth_add_test(test_pm_energy SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_energy.c LIBS thoth_pm)
  thoth_add_test(test_pm_engine SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_engine.c LIBS thoth_pm)
endif()
if(TARGET thoth_pm)
  thoth_add_test(test_pm_sim SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_sim.c LIBS thoth_pm)
endif()
if(TARGET thoth_pm)
  # thoth_channel: governed.c (thoth_pm_governed_deadline is tested here)
  thoth_add_test(test_pm_dvfs SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_dvfs.c LIBS thoth_pm thoth_channel)
endif()
# `thothctl pm sim` end to end (exit codes, JSON parsed by python3).
if(TARGET thothctl AND TARGET thoth_pm)
  add_test(NAME test_pm_sim_cli
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/pm_sim_cli.sh $<TARGET_FILE:thothctl>
                   ${CMAKE_SOURCE_DIR}/bench/pm/traces ${THOTH_PYTHON3_EXE})
  thoth_test_timeout(120 test_pm_sim_cli)
endif()
# bench_pm_live's feasibility check (bench/pm/live_feasible.c): hand-computed
# cases and the unscaled chain cell that Juno's A53 cannot meet.
if(TARGET thoth_pm)
  thoth_add_test(test_pm_live_feasible SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_live_feasible.c
                 ${CMAKE_SOURCE_DIR}/bench/pm/live_feasible.c LIBS thoth_pm)
  target_include_directories(test_pm_live_feasible PRIVATE ${CMAKE_SOURCE_DIR}/bench/pm)
endif()
