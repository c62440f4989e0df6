# Finds the CuTe/CUTLASS headers. Default: the pinned PyPI package nvidia-cutlass (it ships
# cutlass_library/source/include/{cute,cutlass}); override with -DFLASHOMNI_CUTLASS_INCLUDE=<dir>.
if(NOT FLASHOMNI_CUTLASS_INCLUDE)
  find_package(Python3 COMPONENTS Interpreter REQUIRED)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c
      "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))"
    OUTPUT_VARIABLE _fo_cutlass_dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _fo_rc)
  if(NOT _fo_rc EQUAL 0 OR NOT EXISTS "${_fo_cutlass_dir}/cute/tensor.hpp")
    message(FATAL_ERROR "CuTe/CUTLASS headers not found: run scripts/install_deps.sh "
                        "(pip nvidia-cutlass) or pass -DFLASHOMNI_CUTLASS_INCLUDE=<dir>")
  endif()
  set(FLASHOMNI_CUTLASS_INCLUDE "${_fo_cutlass_dir}" CACHE PATH "CuTe/CUTLASS include dir")
endif()
message(STATUS "FlashOmni: CUTLASS headers at ${FLASHOMNI_CUTLASS_INCLUDE}")
