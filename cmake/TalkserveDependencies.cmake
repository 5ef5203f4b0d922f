# Every dependency comes from Debian 12 packages (scripts/setup.sh installs them).
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(tomlplusplus REQUIRED)
pkg_check_modules(SYSTEMD IMPORTED_TARGET libsystemd)
find_package(OpenSSL REQUIRED)
find_package(ZLIB REQUIRED)  # Whisper's compression-ratio check (temperature fallback)

# libtorch: only the model modules (llm, speech, avatar) link it.
find_package(Torch REQUIRED)
if(TALKSERVE_WITH_CUDA)
  find_package(CUDAToolkit REQUIRED)
endif()

# The Redis tier of the clip cache (Debian: libhiredis-dev). Optional: without hiredis (or with
# -DTALKSERVE_WITH_REDIS=OFF) the tier is not built, talkserve_cache does not define
# TALKSERVE_HAVE_REDIS, and a non-empty redis.url is a configuration error. Its tests also need
# redis-server (Debian: redis-server) and are registered only when both are found.
if(TALKSERVE_WITH_REDIS AND "cache" IN_LIST TALKSERVE_MODULES)
  pkg_check_modules(HIREDIS IMPORTED_TARGET hiredis)
  if(HIREDIS_FOUND)
    find_program(REDIS_SERVER_EXECUTABLE redis-server)
  else()
    message(WARNING "talkserve: hiredis not found (Debian: libhiredis-dev): the Redis clip tier "
                    "is not built and redis.url must stay empty")
  endif()
endif()

if(TALKSERVE_BUILD_TESTS)
  find_package(Catch2 2 REQUIRED)
  include(Catch)
endif()

# Media and speech (Debian: libav*-dev, libpocketsphinx-dev, libespeak-ng-dev, flite1-dev).
if("media" IN_LIST TALKSERVE_MODULES OR "speech" IN_LIST TALKSERVE_MODULES)
  pkg_check_modules(LIBAV REQUIRED IMPORTED_TARGET libavformat libavcodec libavutil libswresample libswscale)
endif()
if("speech" IN_LIST TALKSERVE_MODULES)
  # Not pkg_check_modules(IMPORTED_TARGET): Debian's sphinxbase.pc names /usr/include/sphinxbase,
  # which does not exist (the headers are under the multiarch include dir), and CMake refuses
  # imported targets with missing include paths.
  find_path(POCKETSPHINX_INCLUDE_DIR pocketsphinx.h PATH_SUFFIXES pocketsphinx REQUIRED)
  find_path(SPHINXBASE_INCLUDE_DIR sphinxbase/cmd_ln.h
            PATHS /usr/include/${CMAKE_LIBRARY_ARCHITECTURE} REQUIRED)
  find_library(POCKETSPHINX_LIBRARY pocketsphinx REQUIRED)
  find_library(SPHINXBASE_LIBRARY sphinxbase REQUIRED)
  add_library(talkserve_pocketsphinx INTERFACE)
  target_include_directories(talkserve_pocketsphinx SYSTEM INTERFACE
    ${POCKETSPHINX_INCLUDE_DIR} ${SPHINXBASE_INCLUDE_DIR} ${SPHINXBASE_INCLUDE_DIR}/sphinxbase)
  target_link_libraries(talkserve_pocketsphinx INTERFACE ${POCKETSPHINX_LIBRARY} ${SPHINXBASE_LIBRARY})
  pkg_check_modules(ESPEAK_NG REQUIRED IMPORTED_TARGET espeak-ng)
  # flite ships no pkg-config file.
  find_path(FLITE_INCLUDE_DIR flite/flite.h REQUIRED)
  find_library(FLITE_LIBRARY flite REQUIRED)
  set(FLITE_LIBRARIES)
  foreach(_part flite_cmu_us_kal16 flite_cmu_us_slt flite_cmu_us_rms flite_cmu_us_awb
                flite_usenglish flite_cmulex)
    find_library(FLITE_${_part}_LIBRARY ${_part} REQUIRED)
    list(APPEND FLITE_LIBRARIES ${FLITE_${_part}_LIBRARY})
  endforeach()
  list(APPEND FLITE_LIBRARIES ${FLITE_LIBRARY})
endif()

# Avatar (Debian: libopencv-{core,imgproc,imgcodecs,objdetect}-dev and opencv-data for the Haar
# cascades). Not the libopencv-dev meta package: it pulls in VTK, Qt and the rest of OpenCV.
# Without the meta package there is no OpenCVConfig.cmake, so the parts are found one by one.
if("avatar" IN_LIST TALKSERVE_MODULES)
  find_path(OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
  add_library(talkserve_opencv INTERFACE)
  target_include_directories(talkserve_opencv SYSTEM INTERFACE ${OPENCV_INCLUDE_DIR})
  foreach(_part core imgproc imgcodecs objdetect)
    find_library(OPENCV_${_part}_LIBRARY opencv_${_part} REQUIRED)
    target_link_libraries(talkserve_opencv INTERFACE ${OPENCV_${_part}_LIBRARY})
  endforeach()
  find_file(OPENCV_FACE_CASCADE haarcascade_frontalface_default.xml
            PATHS /usr/share/opencv4/haarcascades /usr/share/opencv/haarcascades REQUIRED)
endif()
