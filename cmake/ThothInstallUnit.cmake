# cmake/ThothInstallUnit.cmake - run by `cmake --install` (install(SCRIPT) in
# ThothDist.cmake): writes THOTH_UNIT_OUT, thothd.service configured from
# THOTH_UNIT_IN with ExecStart naming the sbin dir of the prefix being
# installed to.  Configured once at build time, a unit installed with
# `cmake --install build --prefix P` ran the configured prefix's thothd
# (/usr/local/sbin by default), which is not there: the thoth.pc mistake
# (ThothInstallPc.cmake) again.  DESTDIR is not part of CMAKE_INSTALL_PREFIX:
# a staged package still names its real prefix.
if(IS_ABSOLUTE "${THOTH_UNIT_SBINDIR}")
  set(THOTH_SBINDIR "${THOTH_UNIT_SBINDIR}")
else()
  set(THOTH_SBINDIR "${CMAKE_INSTALL_PREFIX}/${THOTH_UNIT_SBINDIR}")
endif()
# Unlinked first: one left by an install as root is replaced, not refused.
file(REMOVE "${THOTH_UNIT_OUT}")
configure_file("${THOTH_UNIT_IN}" "${THOTH_UNIT_OUT}" @ONLY)
