# PM-3: interrupt moderation.  The policies on scripted rate steps (pure),
# the channel integration with hostile consumers and real processes, and
# the ethtool netlink backend against a fake responder.
if(TARGET thoth_pm)
  thoth_add_test(test_moderation SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_moderation.c LIBS thoth_pm)
endif()
if(TARGET thoth_pm AND TARGET thoth_channel)
  thoth_add_test(test_chan_moderation SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_chan_moderation.c
                 LIBS thoth_channel thoth_pm)
endif()
if(TARGET thoth_pm)
  thoth_add_test(test_moderation_ethtool SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_moderation_ethtool.c
                 LIBS thoth_pm Threads::Threads)
endif()
