# thoth_tidl_compile(OUTVAR OUTDIR file.tidl...)
#
# Compiles each .tidl with thothc into OUTDIR/<name>.thoth.{h,c} and puts the
# generated .c files in OUTVAR; add them to a target and OUTDIR to its include
# path.  Imports resolve next to each .tidl (the system interfaces are
# installed in <prefix>/share/thoth/idl).  The same function serves the
# in-tree build, add_subdirectory() users and find_package(Thoth) users: it
# runs Thoth::thothc, the in-tree target's alias or the installed program.

# The files TIDL imports, directly or through others, that exist (absolute
# paths): thothc reads them, so a change to one must regenerate TIDL's code.
# The folder's own *.tidl were its only dependencies, and a schema importing
# another folder's file (the installed system interfaces, THOTH_TIDL_DIR)
# kept code generated from the old text.  Read at configure time: an import
# added later is seen at the next configure.
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
  file(MAKE_DIRECTORY ${outdir})
  set(srcs)
  foreach(tidl ${ARGN})
    get_filename_component(base ${tidl} NAME_WE)
    get_filename_component(abs ${tidl} ABSOLUTE)
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
    list(APPEND srcs ${outdir}/${base}.thoth.c)
  endforeach()
  set(${outvar} ${srcs} PARENT_SCOPE)
endfunction()
