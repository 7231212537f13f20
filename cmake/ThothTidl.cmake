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
function(_thoth_tidl_imports outvar tidl)
  set(seen ${${outvar}})
  get_filename_component(dir ${tidl} DIRECTORY)
  file(STRINGS ${tidl} lines REGEX "^[ \t]*import[ \t]+\"[^\"]+\"")
  foreach(line ${lines})
    string(REGEX REPLACE "^[ \t]*import[ \t]+\"([^\"]+)\".*" "\\1" path "${line}")
    get_filename_component(path "${path}" ABSOLUTE BASE_DIR ${dir})
    if(EXISTS "${path}" AND NOT IS_DIRECTORY "${path}" AND NOT path IN_LIST seen)
      list(APPEND seen ${path})
      set(${outvar} ${seen})
      _thoth_tidl_imports(${outvar} ${path})
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
    _thoth_tidl_imports(imports ${abs})
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
