# install.cmake - what `cmake --install` (and the Debian package) installs:
# the daemon in sbin, the tools in bin, the man pages made from docs/man/
# with pandoc (markdown, so the pages are read and reviewed like the docs).
# Included last from the top CMakeLists.txt: it names targets of several
# directories. Configuration, units and examples are the package's
# (debian/).
include(GNUInstallDirs)

if(TARGET authd)
  install(TARGETS authd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
endif()
foreach(tool authctl authjournal authconsume authdb authgen)
  if(TARGET ${tool})
    install(TARGETS ${tool} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

# Man pages: docs/man/NAME.SECTION.md -> NAME.SECTION (roff).
find_program(AUTHD_PANDOC pandoc)
file(GLOB man_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/*.md)
if(AUTHD_PANDOC AND man_sources)
  set(man_pages)
  foreach(src ${man_sources})
    get_filename_component(page ${src} NAME_WLE)         # authd.8
    string(REGEX MATCH "[0-9]$" section ${page})
    set(out ${PROJECT_BINARY_DIR}/man/${page})
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
      COMMAND ${AUTHD_PANDOC} -f markdown-smart -s -t man
              -M "footer=authd ${PROJECT_VERSION}" -M date= ${src} -o ${out}
      DEPENDS ${src} VERBATIM
      COMMENT "man page ${page}")
    list(APPEND man_pages ${out})
    install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(man ALL DEPENDS ${man_pages})
else()
  message(STATUS "pandoc not found: man pages are not built "
                 "(scripts/deps.sh installs pandoc)")
endif()
