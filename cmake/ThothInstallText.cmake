# cmake/ThothInstallText.cmake - included by the install scripts that write
# a file for the prefix being installed to (ThothInstallPc.cmake,
# ThothInstallUnit.cmake): installs THOTH_TEXT as THOTH_TEXT_NAME in
# THOTH_TEXT_DIR (relative: under the install prefix; DESTDIR is applied by
# file(INSTALL), which also lists it in install_manifest.txt).
#
# The text goes through a file of this install's own (random name, removed
# after): a fixed name in the build dir was rewritten by another
# `cmake --install` of the same build running at the same time (ctest runs
# the install tests together, each with its prefix), and an install then
# put the other's prefix in its unit or thoth.pc, or found the file gone.
# An include, not a function: file(INSTALL) records the manifest in the
# calling scope.
if(IS_ABSOLUTE "${THOTH_TEXT_DIR}")
  set(_thoth_text_dir "${THOTH_TEXT_DIR}")
else()
  set(_thoth_text_dir "${CMAKE_INSTALL_PREFIX}/${THOTH_TEXT_DIR}")
endif()
string(RANDOM LENGTH 16 _thoth_text_tag)
set(_thoth_text_tmp "${THOTH_TEXT_TMPDIR}/${THOTH_TEXT_NAME}.${_thoth_text_tag}.tmp")
file(WRITE "${_thoth_text_tmp}" "${THOTH_TEXT}")
file(INSTALL DESTINATION "${_thoth_text_dir}" TYPE FILE RENAME "${THOTH_TEXT_NAME}"
     FILES "${_thoth_text_tmp}")
file(REMOVE "${_thoth_text_tmp}")
