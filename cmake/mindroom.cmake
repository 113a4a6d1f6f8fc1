# Helpers shared by every library and service CMakeLists.

# mr_add_test(NAME SOURCES... LIBS ...): a cmocka test executable registered with CTest.
function(mr_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "MR_TEST_DATA=${CMAKE_CURRENT_SOURCE_DIR}/tests/data;MR_BUILD_DIR=${CMAKE_BINARY_DIR}"
    LABELS "${T_LABELS}")
endfunction()

# mr_add_tests(PREFIX LIBS ... [LABELS ...] [TIMEOUT seconds]): an mr_add_test named
# <PREFIX>_test_<module> for each tests/test_<module>.c of the calling folder.
function(mr_add_tests prefix)
  cmake_parse_arguments(T "" "TIMEOUT" "LIBS;LABELS" ${ARGN})
  file(GLOB tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/tests/test_*.c)
  foreach(t ${tests})
    get_filename_component(n ${t} NAME_WE)
    mr_add_test(${prefix}_${n} SOURCES ${t} LIBS ${T_LIBS} LABELS ${T_LABELS})
    if(T_TIMEOUT)
      set_tests_properties(${prefix}_${n} PROPERTIES TIMEOUT ${T_TIMEOUT})
    endif()
  endforeach()
endfunction()

# mr_add_fuzzers(LIBS ... [INCLUDES ...]): one libFuzzer target per fuzz/fuzz_*.c of the calling
# folder, named after its file; seeds live in fuzz/corpus/<name without fuzz_>, where make fuzz
# looks for them.
function(mr_add_fuzzers)
  cmake_parse_arguments(F "" "" "LIBS;INCLUDES" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_*.c)
  foreach(f ${sources})
    get_filename_component(n ${f} NAME_WE)
    mr_add_fuzzer(${n} SOURCES ${f} LIBS ${F_LIBS})
    if(MR_FUZZ AND F_INCLUDES)
      target_include_directories(${n} PRIVATE ${F_INCLUDES})
    endif()
  endforeach()
endfunction()

# mr_add_fuzzer(NAME SOURCE LIBS ...): a libFuzzer target, built only with MR_FUZZ.
function(mr_add_fuzzer name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBS" ${ARGN})
  if(MR_FUZZ)
    add_executable(${name} ${F_SOURCES})
    target_link_libraries(${name} PRIVATE ${F_LIBS})
    # tests/support/fuzz_text.h: the input as C text, shared by the fuzz targets.
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    add_dependencies(fuzzers ${name})
  endif()
endfunction()
