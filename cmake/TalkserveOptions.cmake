# Warnings and sanitizers applied to every talkserve target through this interface library.
add_library(talkserve_options INTERFACE)
target_compile_options(talkserve_options INTERFACE -Wall -Wextra)
target_compile_definitions(talkserve_options INTERFACE
  TALKSERVE_VERSION="${PROJECT_VERSION}")

if(TALKSERVE_SANITIZE)
  string(REPLACE ";" "," _ts_san "${TALKSERVE_SANITIZE}")
  message(STATUS "talkserve: building with -fsanitize=${_ts_san}")
  target_compile_options(talkserve_options INTERFACE -fsanitize=${_ts_san} -fno-omit-frame-pointer)
  target_link_options(talkserve_options INTERFACE -fsanitize=${_ts_san})
  if("thread" IN_LIST TALKSERVE_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 warns that TSan does not model std::atomic_thread_fence, once per use inside
    # Boost.Asio's io_context executor (std_fenced_block); the warning is about Asio's code.
    target_compile_options(talkserve_options INTERFACE -Wno-tsan)
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # As for TALKSERVE_FUZZ below: clang 14's -fsanitize=function cannot instrument coroutines,
    # and Boost 1.74 needs to be told that clang with libstdc++ has co_await.
    if("undefined" IN_LIST TALKSERVE_SANITIZE)
      target_compile_options(talkserve_options INTERFACE -fno-sanitize=function)
    endif()
    target_compile_definitions(talkserve_options INTERFACE BOOST_ASIO_HAS_CO_AWAIT=1)
  endif()
endif()

# libFuzzer builds: every talkserve target gets coverage instrumentation plus ASan and UBSan
# (UBSan aborts, so the fuzzer records the input); fuzz/ links the targets with -fsanitize=fuzzer.
if(TALKSERVE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "TALKSERVE_FUZZ needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++ (Debian: clang, libclang-rt-14-dev)")
  endif()
  if(TALKSERVE_SANITIZE)
    message(FATAL_ERROR "TALKSERVE_FUZZ brings its own sanitizers; leave TALKSERVE_SANITIZE empty")
  endif()
  target_compile_options(talkserve_options INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer
    # clang 14's -fsanitize=function puts prologue data in coroutine functions that the
    # assembler rejects ("Cannot represent a difference across sections").
    -fno-sanitize=function)
  target_link_options(talkserve_options INTERFACE -fsanitize=address,undefined)
  # Boost 1.74 enables co_await for clang only with libc++'s <experimental/coroutine>; clang 14
  # with libstdc++ 12's <coroutine> works (BOOST_ASIO_HAS_STD_COROUTINE is detected already).
  target_compile_definitions(talkserve_options INTERFACE BOOST_ASIO_HAS_CO_AWAIT=1)
endif()

if(TALKSERVE_WITH_CUDA)
  target_compile_definitions(talkserve_options INTERFACE TALKSERVE_WITH_CUDA=1)
endif()

# talkserve_module(<name> SOURCES ... [PUBLIC_LIBS ...] [PRIVATE_LIBS ...])
# One static library per module, target talkserve_<name>, alias talkserve::<name>.
function(talkserve_module name)
  cmake_parse_arguments(M "" "" "SOURCES;PUBLIC_LIBS;PRIVATE_LIBS" ${ARGN})
  add_library(talkserve_${name} STATIC ${M_SOURCES})
  add_library(talkserve::${name} ALIAS talkserve_${name})
  target_include_directories(talkserve_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include
                                              PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(talkserve_${name} PUBLIC talkserve_options ${M_PUBLIC_LIBS}
                                          PRIVATE ${M_PRIVATE_LIBS})
endfunction()

# talkserve_test(<name> SOURCES ... LIBS ... [LABELS ...])
# A Catch2 (v2) test executable registered with CTest, one CTest entry per test case.
function(talkserve_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE talkserve_test_main ${T_LIBS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  catch_discover_tests(${name})
  # List-valued properties (two labels, two env vars) do not survive
  # catch_discover_tests(PROPERTIES ...), which flattens them; set them from a CTest include
  # file that runs after the discovery script and sees its ${name}_TESTS list.
  set(_props "${CMAKE_CURRENT_BINARY_DIR}/${name}_properties.cmake")
  file(GENERATE OUTPUT "${_props}" CONTENT
"if(${name}_TESTS)
  set_tests_properties(\${${name}_TESTS} PROPERTIES
    LABELS \"${T_LABELS}\"
    ENVIRONMENT \"TALKSERVE_SOURCE_DIR=${PROJECT_SOURCE_DIR};TALKSERVE_BINARY_DIR=${PROJECT_BINARY_DIR};TALKSERVE_MODELS_DIR=${TALKSERVE_MODELS_DIR}\")
endif()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${_props}")
endfunction()
