# Passed as CMAKE_PROJECT_INCLUDE when scripts/test.sh builds emotion_msgs against the ros-jazzy-*
# wheels from PyPI. Those wheels were built in a manylinux container, and the *__rosidl_generator_py
# targets they export name that container's Python and numpy include directories
# (/opt/python/cp311-cp311/...). CMake refuses imported targets with missing include directories,
# so, once the project's CMakeLists.txt has run, this drops such directories from every imported
# target. The package's own Python extension gets this interpreter's include directories from
# rosidl_generator_py's find_package(Python3 ... NumPy), as on a distro install.
function(_ros_wheels_drop_missing_include_dirs)
  get_property(targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    set(kept "")
    foreach(dir IN LISTS dirs)
      if(EXISTS "${dir}" OR dir MATCHES "^\\$<")  # keep generator expressions as they are
        list(APPEND kept "${dir}")
      else()
        message(STATUS "ros_wheels.cmake: ${target}: dropping missing include directory ${dir}")
      endif()
    endforeach()
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${kept}")
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _ros_wheels_drop_missing_include_dirs)
