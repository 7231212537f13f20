# The one library users link, made from every module listed in `thoth`
# (target_link_libraries(thoth INTERFACE thoth_x) in a module's folder):
#
#   libthoth.so.0  shared, SONAME libthoth.so.<major>; only thoth_* exported
#                  (cmake/thoth.map), everything else local.
#   libthoth.a     static: the modules' objects linked into one relocatable
#                  object (ld -r) whose non-thoth_* symbols objcopy makes
#                  local, so a program that defines its own chan_send or
#                  timerq_init links with it without a clash.
#
# In-tree programs and tests keep linking the module libraries; users (the
# installed tree, add_subdirectory) link Thoth::thoth.

get_target_property(THOTH_MODULES thoth INTERFACE_LINK_LIBRARIES)
set(_objs)
set(_archives)
set(_deps)
foreach(m ${THOTH_MODULES})
  if(m MATCHES "^::@")          # CMake's marker for a call from another directory
    continue()
  endif()
  if(NOT TARGET ${m})
    message(FATAL_ERROR "libthoth: module '${m}' is listed in `thoth` but is no target")
  endif()
  list(APPEND _objs $<TARGET_OBJECTS:${m}>)
  # The code thothc generates for libthoth's own interfaces (registry,
  # codex, pm, ...) stays out of the hot groups (include/thoth/hot.h): it
  # is on no channel round trip's path, and in libthoth.so it would spread
  # the client and serving groups over every interface's adapters.  A
  # program's own generated code keeps them (docs/SCHED.md, stop 35).
  target_compile_definitions(${m} PRIVATE THOTH__HOT_CLIENT= THOTH__HOT_SERVE=)
  list(APPEND _archives $<TARGET_FILE:${m}>)
  list(APPEND _deps ${m})
  # Libraries a module links besides other modules (m, liburing through
  # PkgConfig::LIBURING, ...) are libthoth's too: THOTH_SYSTEM_LINK for the
  # link, THOTH_SYSTEM_LIBS as plain names (thoth.pc, the installed
  # Thoth::thoth_static), since an installed package cannot name the
  # build's imported targets.
  get_target_property(_links ${m} LINK_LIBRARIES)
  if(NOT _links)
    set(_links)
  endif()
  foreach(l ${_links})
    if(l MATCHES "^(thoth|::@)" OR l STREQUAL "Threads::Threads")
      continue()
    endif()
    list(APPEND THOTH_SYSTEM_LINK ${l})
    set(_files ${l})
    if(TARGET ${l})
      get_target_property(_files ${l} INTERFACE_LINK_LIBRARIES)
    endif()
    foreach(f ${_files})
      if(f MATCHES "^/")
        get_filename_component(f ${f} NAME_WE)
        string(REGEX REPLACE "^lib" "" f ${f})
      endif()
      list(APPEND THOTH_SYSTEM_LIBS ${f})
    endforeach()
  endforeach()
endforeach()
foreach(v THOTH_SYSTEM_LINK THOTH_SYSTEM_LIBS)
  if(${v})
    list(REMOVE_DUPLICATES ${v})
  endif()
endforeach()

add_library(thoth_shared SHARED ${_objs})
set_target_properties(thoth_shared PROPERTIES
  OUTPUT_NAME thoth
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}
  EXPORT_NAME thoth
  LINK_DEPENDS ${PROJECT_SOURCE_DIR}/cmake/thoth.map)
target_link_options(thoth_shared PRIVATE
  -Wl,--version-script=${PROJECT_SOURCE_DIR}/cmake/thoth.map)
if(NOT THOTH_SANITIZE AND NOT THOTH_FUZZ)
  # Every reference resolved inside libthoth or its listed dependencies.
  target_link_options(thoth_shared PRIVATE -Wl,--no-undefined -Wl,-z,relro -Wl,-z,now)
endif()
# PRIVATE: a shared library carries its own dependencies (DT_NEEDED).
target_link_libraries(thoth_shared PRIVATE Threads::Threads ${THOTH_SYSTEM_LINK})
# thoth/idl too: a user's schema that imports a system interface
# (`import ".../share/thoth/idl/common.tidl"`) gets a header that includes
# "common.thoth.h", as the system headers include each other; without the
# folder on the path it was "common.thoth.h: No such file or directory".
# thoth.pc's Cflags say the same (cmake/thoth.pc.in).  SYSTEM (-isystem:
# after every -I): a plain include folder ahead of a user's generated code
# (linked after Thoth::thoth) gave a user's echo.tidl the system's
# echo.thoth.h.  An imported Thoth::thoth's folders are SYSTEM already.
target_include_directories(thoth_shared INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  $<BUILD_INTERFACE:${THOTH_GEN_INCLUDE}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_include_directories(thoth_shared SYSTEM INTERFACE
  $<BUILD_INTERFACE:${THOTH_GEN_INCLUDE}/thoth/idl>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/thoth/idl>)
add_library(Thoth::thoth ALIAS thoth_shared)

# libthoth.a.  CMAKE_LINKER is ld; objcopy -w takes the wildcard.
set(THOTH_STATIC ${CMAKE_CURRENT_BINARY_DIR}/libthoth.a)
set(_relo ${CMAKE_CURRENT_BINARY_DIR}/CMakeFiles/thoth_static.dir/thoth.o)
find_program(THOTH_LD NAMES ld ld.bfd REQUIRED)
find_program(THOTH_OBJCOPY NAMES objcopy REQUIRED)
find_program(THOTH_AR NAMES ar REQUIRED)
add_custom_command(
  OUTPUT ${THOTH_STATIC}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/CMakeFiles/thoth_static.dir
  COMMAND ${THOTH_LD} -r -o ${_relo} --whole-archive ${_archives} --no-whole-archive
  COMMAND ${THOTH_OBJCOPY} -w --keep-global-symbol=thoth_* ${_relo}
  COMMAND ${CMAKE_COMMAND} -E rm -f ${THOTH_STATIC}
  COMMAND ${THOTH_AR} rcsD ${THOTH_STATIC} ${_relo}
  DEPENDS ${_deps}
  COMMENT "libthoth.a: one object, only thoth_* global"
  VERBATIM)
add_custom_target(thoth_static ALL DEPENDS ${THOTH_STATIC})

# Thoth::thoth_static for add_subdirectory() users (find_package users get an
# imported target of the same name from ThothConfig.cmake).
add_library(thoth_static_link INTERFACE)
target_link_libraries(thoth_static_link INTERFACE ${THOTH_STATIC} Threads::Threads ${THOTH_SYSTEM_LINK})
target_include_directories(thoth_static_link INTERFACE
  ${PROJECT_SOURCE_DIR}/include ${THOTH_GEN_INCLUDE})
target_include_directories(thoth_static_link SYSTEM INTERFACE ${THOTH_GEN_INCLUDE}/thoth/idl)
add_dependencies(thoth_static_link thoth_static)
add_library(Thoth::thoth_static ALIAS thoth_static_link)
