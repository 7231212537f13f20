# cmake/ThothInstallPc.cmake - run by `cmake --install` (install(SCRIPT) in
# ThothInstall.cmake): installs thoth.pc, configured in THOTH_PC_BUILT, with
# its prefix line naming the prefix being installed to, into THOTH_PC_DIR.
# `cmake --install build --prefix P` installs under P, not under the prefix
# the build was configured with; the installed thoth.pc named the configured
# one (/usr/local by default), and a program built with its flags found no
# headers ("thoth/channel.h: No such file or directory").  DESTDIR is not
# part of CMAKE_INSTALL_PREFIX: a staged package still names its real prefix.
file(READ "${THOTH_PC_BUILT}" THOTH_TEXT)
string(REGEX REPLACE "^prefix=[^\n]*" "prefix=${CMAKE_INSTALL_PREFIX}" THOTH_TEXT "${THOTH_TEXT}")
set(THOTH_TEXT_NAME thoth.pc)
set(THOTH_TEXT_DIR "${THOTH_PC_DIR}")
set(THOTH_TEXT_TMPDIR "${THOTH_PC_TMPDIR}")
include("${CMAKE_CURRENT_LIST_DIR}/ThothInstallText.cmake")
