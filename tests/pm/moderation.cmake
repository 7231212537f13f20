# PM-3: interrupt moderation.  The policies on scripted rate steps (pure),
# the channel integration with hostile consumers and real processes, and
# the ethtool netlink backend against a fake responder.
if(TARGET thoth_pm)
  thoth_add_test(test_moderation SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_moderation.c LIBS thoth_pm)
endif()
# test_chantest_idl: the channel tests' interface (tests/ipc).
if(TARGET thoth_pm AND TARGET thoth_channel AND TARGET test_chantest_idl)
  thoth_add_test(test_chan_moderation SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_chan_moderation.c
                 LIBS thoth_channel thoth_pm test_chantest_idl)
endif()
if(TARGET thoth_pm)
  thoth_add_test(test_moderation_ethtool SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_moderation_ethtool.c
                 LIBS thoth_pm Threads::Threads)
endif()
# The NIC control loop on real interfaces (tun, lo) in a network namespace
# of its own; skips (77) without CAP_SYS_ADMIN / CAP_NET_RAW.
if(TARGET thoth_pm)
  thoth_add_test(test_nic_moderation SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_nic_moderation.c
                 LIBS thoth_pm thoth_loop Threads::Threads TIMEOUT 90)
  set_tests_properties(test_nic_moderation PROPERTIES SKIP_RETURN_CODE 77)
  if(TARGET nic-moderator)
    target_compile_definitions(test_nic_moderation PRIVATE NIC_MODERATOR="$<TARGET_FILE:nic-moderator>")
    add_dependencies(test_nic_moderation nic-moderator)
  endif()
endif()
# The NVMe coalescing loop (feature 0x08) on a fixture sysfs/procfs tree
# with a recording fake controller, plus the real perf wake-up on this
# machine's disk (skipped without perf) and the nvme-moderator service.
if(TARGET thoth_pm)
  thoth_add_test(test_nvme_moderation SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_nvme_moderation.c
                 LIBS thoth_pm thoth_loop TIMEOUT 60)
  if(TARGET nvme-moderator)
    target_compile_definitions(test_nvme_moderation PRIVATE NVME_MODERATOR="$<TARGET_FILE:nvme-moderator>")
    add_dependencies(test_nvme_moderation nvme-moderator)
  endif()
  # Its perf wake-up tests need tracefs: as root it mounts it for its own
  # run where nothing did, as test_probe_kernel does: never beside it.
  set_tests_properties(test_nvme_moderation PROPERTIES RESOURCE_LOCK tracefs)
endif()
