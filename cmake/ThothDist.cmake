# What a distribution ships besides the library: man pages (scdoc sources in
# man/), bash completions (completion/), systemd user units (systemd/), the
# documentation (docs/: the man pages send the reader there).
# Installed by cmake/ThothInstall.cmake's `cmake --install` and `make install`.

# Man pages: man/NAME.SECTION.scd -> NAME.SECTION, one source format (scdoc,
# from Debian).  THOTH_MAN: ON needs scdoc, AUTO builds them when scdoc is
# there and says so when it is not, OFF skips them.
set(THOTH_MAN AUTO CACHE STRING "build the man pages with scdoc (ON, OFF, AUTO)")
set(THOTH_MAN_PAGES)
set(THOTH_MAN_SOURCES)
if(NOT THOTH_MAN STREQUAL "OFF")
  find_program(THOTH_SCDOC scdoc)
  if(NOT THOTH_SCDOC)
    if(THOTH_MAN STREQUAL "ON")
      message(FATAL_ERROR "THOTH_MAN=ON but scdoc is not installed (Debian: scdoc)")
    endif()
    message(WARNING "scdoc not found: man pages not built (scripts/bootstrap.sh installs it)")
  else()
    file(GLOB _scd ${PROJECT_SOURCE_DIR}/man/*.scd)
    foreach(src ${_scd})
      get_filename_component(page ${src} NAME)
      string(REGEX REPLACE "\\.scd$" "" page ${page})
      set(out ${PROJECT_BINARY_DIR}/man/${page})
      # @THOTH_DOCDIR@: where docs/ is installed (the pages' SEE ALSO),
      # put in by the script the install uses too, safe for any path (a
      # sed expression broke on a `|` or `&` in the prefix).
      add_custom_command(OUTPUT ${out}
        COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
        COMMAND ${CMAKE_COMMAND} -DTHOTH_MAN_SRC=${src} -DTHOTH_MAN_OUT=${out}
                -DTHOTH_MAN_NAME=${page} -DTHOTH_MAN_DOCDIR=${CMAKE_INSTALL_FULL_DOCDIR}
                -DTHOTH_MAN_SCDOC=${THOTH_SCDOC} -DTHOTH_MAN_TMPDIR=${PROJECT_BINARY_DIR}/man
                -P ${PROJECT_SOURCE_DIR}/cmake/ThothInstallMan.cmake
        DEPENDS ${src} ${PROJECT_SOURCE_DIR}/cmake/ThothInstallMan.cmake
        COMMENT "scdoc ${page}"
        VERBATIM)
      list(APPEND THOTH_MAN_PAGES ${out})
      list(APPEND THOTH_MAN_SOURCES ${src})
    endforeach()
    add_custom_target(thoth_man ALL DEPENDS ${THOTH_MAN_PAGES})
  endif()
endif()

# The service unit names thothd by its installed path: written at install
# time, for the prefix installed to (ThothInstallUnit.cmake, below).
configure_file(${PROJECT_SOURCE_DIR}/systemd/thothd.socket
               ${PROJECT_BINARY_DIR}/systemd/thothd.socket COPYONLY)
# User units: systemd looks in <prefix>/lib/systemd/user (not multiarch).
# Relative to the prefix unless given absolute.
set(THOTH_SYSTEMD_USER_UNITDIR "lib/systemd/user" CACHE STRING
    "where the systemd user units go (relative: under the install prefix)")

if(THOTH_INSTALL)
  # Made again at install for the prefix installed to, whose docs folder
  # they name (ThothInstallMan.cmake); the built pages (thoth_man) name the
  # configured prefix's.
  foreach(src ${THOTH_MAN_SOURCES})
    get_filename_component(page ${src} NAME)
    string(REGEX REPLACE "\\.scd$" "" page ${page})
    string(REGEX MATCH "[0-9]$" sec ${page})
    install(CODE "set(THOTH_MAN_SRC \"${src}\")
set(THOTH_MAN_NAME \"${page}\")
set(THOTH_MAN_DIR \"${CMAKE_INSTALL_MANDIR}/man${sec}\")
set(THOTH_MAN_DOCDIR \"${CMAKE_INSTALL_DOCDIR}\")
set(THOTH_MAN_SCDOC \"${THOTH_SCDOC}\")
set(THOTH_MAN_TMPDIR \"${PROJECT_BINARY_DIR}/man\")
include(\"${PROJECT_SOURCE_DIR}/cmake/ThothInstallMan.cmake\")" COMPONENT tools)
  endforeach()
  # docs/*.md and the images they show, in DOCDIR (share/doc/thoth): the
  # man pages named docs that only a source tree had.  Globbed, so a new
  # doc is installed without a list to forget (test_install_pkgconfig_service checks
  # every docs/*.md is there); CONFIGURE_DEPENDS: added after the
  # configure, it is seen at the next build.
  file(GLOB _thoth_docs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md
       ${PROJECT_SOURCE_DIR}/docs/*.png ${PROJECT_SOURCE_DIR}/docs/*.svg)
  install(FILES ${_thoth_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT tools)
  install(FILES ${PROJECT_SOURCE_DIR}/completion/thothctl.bash
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
          RENAME thothctl COMPONENT tools)
  install(FILES ${PROJECT_SOURCE_DIR}/completion/thothc.bash
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
          RENAME thothc COMPONENT tools)
  install(CODE "set(THOTH_UNIT_IN \"${PROJECT_SOURCE_DIR}/systemd/thothd.service.in\")
set(THOTH_UNIT_TMPDIR \"${PROJECT_BINARY_DIR}/systemd\")
set(THOTH_UNIT_DIR \"${THOTH_SYSTEMD_USER_UNITDIR}\")
set(THOTH_UNIT_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")" COMPONENT tools)
  install(SCRIPT ${PROJECT_SOURCE_DIR}/cmake/ThothInstallUnit.cmake COMPONENT tools)
  install(FILES ${PROJECT_BINARY_DIR}/systemd/thothd.socket
          DESTINATION ${THOTH_SYSTEMD_USER_UNITDIR} COMPONENT tools)
endif()
