# Install rules: `cmake --install` and `make install` (PREFIX, DESTDIR).
#
#   include/thoth/*.h, thoth/version.h   public headers
#   include/thoth/idl/*.thoth.h          the system interfaces, generated
#   lib/libthoth.so.0*, libthoth.a       the library (cmake/ThothLibrary.cmake)
#   lib/pkgconfig/thoth.pc               pkg-config --cflags --libs thoth
#   lib/cmake/Thoth/                     find_package(Thoth)
#   share/thoth/idl/*.tidl               the system interfaces, to import
#   bin/thothc, bin/thothctl, sbin/thothd
include(CMakePackageConfigHelpers)

set(THOTH_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Thoth)
set(THOTH_INSTALL_TIDLDIR ${CMAKE_INSTALL_DATADIR}/thoth/idl)
set(THOTH_INSTALL_LIBDIR ${CMAKE_INSTALL_LIBDIR})
set(THOTH_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/thoth
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
        FILES_MATCHING PATTERN "*.h"
        PATTERN "hot.h" EXCLUDE)
install(FILES ${THOTH_GEN_INCLUDE}/thoth/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/thoth COMPONENT dev)
install(FILES ${THOTH_IDL_HEADERS}
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/thoth/idl COMPONENT dev)
install(FILES ${THOTH_IDL_TIDL} DESTINATION ${THOTH_INSTALL_TIDLDIR} COMPONENT dev)

install(TARGETS thoth_shared EXPORT ThothTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT lib NAMELINK_COMPONENT dev)
install(FILES ${THOTH_STATIC} DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)

set_target_properties(thothc PROPERTIES EXPORT_NAME thothc)
install(TARGETS thothc EXPORT ThothTargets RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
install(TARGETS thothctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
install(TARGETS thothd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT tools)

# pkg-config
foreach(d LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${d}}")
    set(THOTH_PC_${d} "${CMAKE_INSTALL_${d}}")
  else()
    set(THOTH_PC_${d} "\${prefix}/${CMAKE_INSTALL_${d}}")
  endif()
endforeach()
set(THOTH_PC_PRIVATE)
foreach(l ${THOTH_SYSTEM_LIBS})
  string(APPEND THOTH_PC_PRIVATE " -l${l}")
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/cmake/thoth.pc.in ${CMAKE_CURRENT_BINARY_DIR}/thoth.pc @ONLY)
# Installed with the prefix it is installed under (`cmake --install
# --prefix P`), not the configured one: ThothInstallPc.cmake, which installs
# it through a file of its own in the build dir, removed after
# (ThothInstallText.cmake: a `sudo cmake --install` leaves nothing
# root-owned there, and installs running together do not share it).
install(CODE "set(THOTH_PC_BUILT \"${CMAKE_CURRENT_BINARY_DIR}/thoth.pc\")
set(THOTH_PC_TMPDIR \"${CMAKE_CURRENT_BINARY_DIR}\")
set(THOTH_PC_DIR \"${CMAKE_INSTALL_LIBDIR}/pkgconfig\")" COMPONENT dev)
install(SCRIPT ${PROJECT_SOURCE_DIR}/cmake/ThothInstallPc.cmake COMPONENT dev)

# CMake package
install(EXPORT ThothTargets NAMESPACE Thoth:: DESTINATION ${THOTH_INSTALL_CMAKEDIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ThothConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/ThothConfig.cmake
  INSTALL_DESTINATION ${THOTH_INSTALL_CMAKEDIR}
  PATH_VARS THOTH_INSTALL_TIDLDIR THOTH_INSTALL_LIBDIR THOTH_INSTALL_INCLUDEDIR)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/ThothConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ThothConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/ThothConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/ThothTidl.cmake
        DESTINATION ${THOTH_INSTALL_CMAKEDIR} COMPONENT dev)
