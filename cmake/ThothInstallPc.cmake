# cmake/ThothInstallPc.cmake - run by `cmake --install` (install(SCRIPT) in
# ThothInstall.cmake): writes THOTH_PC_OUT, the thoth.pc configured in
# THOTH_PC_BUILT with its prefix line naming the prefix being installed to.
# `cmake --install build --prefix P` installs under P, not under the prefix
# the build was configured with; the installed thoth.pc named the configured
# one (/usr/local by default), and a program built with its flags found no
# headers ("thoth/channel.h: No such file or directory").  DESTDIR is not
# part of CMAKE_INSTALL_PREFIX: a staged package still names its real prefix.
file(READ "${THOTH_PC_BUILT}" pc)
string(REGEX REPLACE "^prefix=[^\n]*" "prefix=${CMAKE_INSTALL_PREFIX}" pc "${pc}")
# Unlinked first: one left by an install as another user (root) is replaced,
# not refused (the build dir is its owner's, the file may not be).
file(REMOVE "${THOTH_PC_OUT}")
file(WRITE "${THOTH_PC_OUT}" "${pc}")
