# cmake/ThothInstallMan.cmake - run by `cmake --install` (install(CODE) in
# ThothDist.cmake): installs the man page THOTH_MAN_SRC (scdoc) as
# THOTH_MAN_NAME in THOTH_MAN_DIR, its @THOTH_DOCDIR@ the docs folder of the
# prefix being installed to (THOTH_MAN_DOCDIR under it, unless absolute).
# Made once at build time with the configured prefix, a page installed
# with `cmake --install build --prefix P` sent the reader to the configured
# prefix's share/doc/thoth, which is not there: the thoth.pc and unit
# mistake (ThothInstallPc.cmake, ThothInstallUnit.cmake) again.  Made
# again here by scdoc, as the build made it (a string replacement in the
# built page would miss a path that scdoc escapes, "1.\&0").  DESTDIR is
# not part of CMAKE_INSTALL_PREFIX: a staged package names its real prefix.
#
# The build's page (thoth_man) is made by this script too, run as
# `cmake -DTHOTH_MAN_OUT=FILE ... -P`: it writes FILE instead of installing.
# The build used `sed "s|@THOTH_DOCDIR@|DOCDIR|g"`, and a docdir with a `|`
# ended the expression ("unknown option to `s'") and one with `&` put the
# placeholder itself back into the path.  Here the docdir is escaped for
# scdoc (`\`, `*` and `_` are its markup: "/opt/a*b" stopped scdoc with
# "Cannot nest inline formatting") and replaced as a plain string.
if(IS_ABSOLUTE "${THOTH_MAN_DOCDIR}")
  set(_thoth_man_docdir "${THOTH_MAN_DOCDIR}")
else()
  set(_thoth_man_docdir "${CMAKE_INSTALL_PREFIX}/${THOTH_MAN_DOCDIR}")
endif()
file(READ "${THOTH_MAN_SRC}" _thoth_man_scd)
string(REPLACE "\\" "\\\\" _thoth_man_docdir "${_thoth_man_docdir}")
string(REPLACE "*" "\\*" _thoth_man_docdir "${_thoth_man_docdir}")
string(REPLACE "_" "\\_" _thoth_man_docdir "${_thoth_man_docdir}")
string(REPLACE "@THOTH_DOCDIR@" "${_thoth_man_docdir}" _thoth_man_scd "${_thoth_man_scd}")
# this install's own input file (ThothInstallText.cmake: installs of one
# build run at the same time)
string(RANDOM LENGTH 16 _thoth_man_tag)
set(_thoth_man_in "${THOTH_MAN_TMPDIR}/${THOTH_MAN_NAME}.${_thoth_man_tag}.scd.tmp")
file(WRITE "${_thoth_man_in}" "${_thoth_man_scd}")
execute_process(COMMAND "${THOTH_MAN_SCDOC}" INPUT_FILE "${_thoth_man_in}"
                OUTPUT_VARIABLE THOTH_TEXT ERROR_VARIABLE _thoth_man_err
                RESULT_VARIABLE _thoth_man_rc)
file(REMOVE "${_thoth_man_in}")
if(NOT _thoth_man_rc EQUAL 0)
  message(FATAL_ERROR "scdoc ${THOTH_MAN_SRC} (for ${THOTH_MAN_NAME}): ${_thoth_man_rc} ${_thoth_man_err}")
endif()
if(DEFINED THOTH_MAN_OUT)
  # the build's page (ThothDist.cmake's thoth_man): written, not installed
  file(WRITE "${THOTH_MAN_OUT}" "${THOTH_TEXT}")
  return()
endif()
set(THOTH_TEXT_NAME "${THOTH_MAN_NAME}")
set(THOTH_TEXT_DIR "${THOTH_MAN_DIR}")
set(THOTH_TEXT_TMPDIR "${THOTH_MAN_TMPDIR}")
include("${CMAKE_CURRENT_LIST_DIR}/ThothInstallText.cmake")
