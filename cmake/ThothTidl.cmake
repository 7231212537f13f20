# thoth_tidl_compile(OUTVAR OUTDIR file.tidl...)
#
# Compiles each .tidl with thothc into OUTDIR/<name>.thoth.{h,c} and puts the
# generated .c files in OUTVAR; add them to a target and OUTDIR to its include
# path.  Imports resolve next to each .tidl (the system interfaces are
# installed in <prefix>/share/thoth/idl).  The same function serves the
# in-tree build, add_subdirectory() users and find_package(Thoth) users: it
# runs Thoth::thothc, the in-tree target's alias or the installed program.
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
