# PM-1: the power broker core (unit), thothd's PowerBroker, driver services
# and sysfs backends (multi-process and fixture trees).
if(TARGET thoth_pm)
  thoth_add_test(test_pm_broker SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pm_broker.c LIBS thoth_pm)
endif()
