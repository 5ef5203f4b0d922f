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

# libtorch: only the model modules (llm, speech, avatar) link it.
find_package(Torch REQUIRED)
if(TALKSERVE_WITH_CUDA)
  find_package(CUDAToolkit REQUIRED)
endif()

if(TALKSERVE_BUILD_TESTS)
  find_package(Catch2 2 REQUIRED)
  include(Catch)
endif()
