# thoth_tidl_compile(OUTVAR OUTDIR file.tidl...)
#
# Compiles each .tidl with thothc into OUTDIR/<name>.thoth.{h,c} and puts the
# generated .c files in OUTVAR; add them to a target and OUTDIR to its include
# path.  Imports resolve next to each .tidl (the system interfaces are
# installed in <prefix>/share/thoth/idl).  The same function serves the
# in-tree build, add_subdirectory() users and find_package(Thoth) users: it
# runs Thoth::thothc, the in-tree target's alias or the installed program.

# What each generated file depends on is what thothc read to make it: the
# schema and its imports, through imports, in any folder (the installed
# system interfaces, THOTH_TIDL_DIR).  thothc says so itself (gen
# --depfile, a make rule) and the build tool reads it after each run
# (add_custom_command's DEPFILE), so an import added to a schema after the
# configure is a dependency from the next build on: read at configure time
# (below), it was not until the next configure, and an edit of the newly
# imported file left the old generated code.
#
# DEPFILE needs CMake 3.20 with the Makefile generators (any version with
# Ninja).  An older CMake with Makefiles (a user's find_package(Thoth))
# still gets the configure-time read of _thoth_tidl_imports: the files TIDL
# imports that exist (absolute paths), plus the schema's folder's *.tidl.
#
# Only what thothc would read is read here (tools/thothc/load.c, front.h):
# a non-empty file of at most 4 MiB, at most 64 imports deep.  Anything else
# is thothc's to refuse at build time with its own message; read here, an
# import of a FIFO or /dev/zero hung the configure, and a chain of imports
# past CMake's recursion limit failed it ("Maximum recursion depth").
function(_thoth_tidl_imports outvar tidl depth)
  set(seen ${${outvar}})
  if(depth GREATER_EQUAL 64)
    return()
  endif()
  math(EXPR depth "${depth} + 1")
  get_filename_component(dir "${tidl}" DIRECTORY)
  file(STRINGS "${tidl}" lines REGEX "^[ \t]*import[ \t]+\"[^\"]+\"")
  foreach(line ${lines})
    string(REGEX REPLACE "^[ \t]*import[ \t]+\"([^\"]+)\".*" "\\1" path "${line}")
    get_filename_component(path "${path}" ABSOLUTE BASE_DIR "${dir}")
    if(NOT EXISTS "${path}" OR IS_DIRECTORY "${path}" OR path IN_LIST seen)
      continue()
    endif()
    # stat(2)'s size: 0 for a FIFO, a device or a socket (never opened).
    file(SIZE "${path}" size)
    if(size GREATER 0 AND size LESS_EQUAL 4194304)
      list(APPEND seen ${path})
      set(${outvar} ${seen})
      _thoth_tidl_imports(${outvar} "${path}" ${depth})
      set(seen ${${outvar}})
    endif()
  endforeach()
  set(${outvar} ${seen} PARENT_SCOPE)
endfunction()

function(thoth_tidl_compile outvar outdir)
  if(NOT TARGET Thoth::thothc)
    message(FATAL_ERROR "thoth_tidl_compile: no Thoth::thothc (find_package(Thoth) or "
                        "add_subdirectory of the thoth tree first)")
  endif()
  # Absolute, as the depfile names the outputs (a relative OUTPUT is the
  # current binary dir's).
  get_filename_component(outdir "${outdir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")
  file(MAKE_DIRECTORY ${outdir})
  set(depfile_ok ON)
  if(CMAKE_VERSION VERSION_LESS 3.20 AND NOT CMAKE_GENERATOR MATCHES "Ninja")
    set(depfile_ok OFF)
  endif()
  set(srcs)
  foreach(tidl ${ARGN})
    get_filename_component(base ${tidl} NAME_WE)
    get_filename_component(abs ${tidl} ABSOLUTE)
    if(depfile_ok)
      # The depfile's paths are absolute: read the same under CMP0116's
      # old and new rule; set NEW here so a user's project of an older
      # cmake_minimum_required gets no warning about it.
      set(dep ${outdir}/${base}.thoth.d)
      if(POLICY CMP0116)
        cmake_policy(PUSH)
        cmake_policy(SET CMP0116 NEW)
      endif()
      add_custom_command(
        OUTPUT ${outdir}/${base}.thoth.h ${outdir}/${base}.thoth.c
        COMMAND Thoth::thothc gen --lang c -o ${outdir} --depfile ${dep} ${abs}
        DEPENDS Thoth::thothc ${abs}
        DEPFILE ${dep}
        COMMENT "thothc ${base}.tidl"
        VERBATIM)
      if(POLICY CMP0116)
        cmake_policy(POP)
      endif()
    else()
      get_filename_component(dir ${abs} DIRECTORY)
      file(GLOB deps ${dir}/*.tidl)
      set(imports)
      _thoth_tidl_imports(imports "${abs}" 0)
      list(APPEND deps ${imports})
      add_custom_command(
        OUTPUT ${outdir}/${base}.thoth.h ${outdir}/${base}.thoth.c
        COMMAND Thoth::thothc gen --lang c -o ${outdir} ${abs}
        DEPENDS Thoth::thothc ${deps}
        COMMENT "thothc ${base}.tidl"
        VERBATIM)
    endif()
    list(APPEND srcs ${outdir}/${base}.thoth.c)
  endforeach()
  set(${outvar} ${srcs} PARENT_SCOPE)
endfunction()
