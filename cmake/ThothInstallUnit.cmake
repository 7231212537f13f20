# cmake/ThothInstallUnit.cmake - run by `cmake --install` (install(SCRIPT) in
# ThothDist.cmake): installs thothd.service, configured from THOTH_UNIT_IN
# with ExecStart naming the sbin dir of the prefix being installed to, into
# THOTH_UNIT_DIR.  Configured once at build time, a unit installed with
# `cmake --install build --prefix P` ran the configured prefix's thothd
# (/usr/local/sbin by default), which is not there: the thoth.pc mistake
# (ThothInstallPc.cmake) again.  DESTDIR is not part of CMAKE_INSTALL_PREFIX:
# a staged package still names its real prefix.
if(IS_ABSOLUTE "${THOTH_UNIT_SBINDIR}")
  set(THOTH_SBINDIR "${THOTH_UNIT_SBINDIR}")
else()
  set(THOTH_SBINDIR "${CMAKE_INSTALL_PREFIX}/${THOTH_UNIT_SBINDIR}")
endif()
file(READ "${THOTH_UNIT_IN}" THOTH_TEXT)
string(CONFIGURE "${THOTH_TEXT}" THOTH_TEXT @ONLY)
set(THOTH_TEXT_NAME thothd.service)
set(THOTH_TEXT_DIR "${THOTH_UNIT_DIR}")
set(THOTH_TEXT_TMPDIR "${THOTH_UNIT_TMPDIR}")
include("${CMAKE_CURRENT_LIST_DIR}/ThothInstallText.cmake")
