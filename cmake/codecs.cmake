# Image codecs for the native image feed (native/src/image/), linked statically into carzero_core
# so the prebuilt binary needs nothing installed: zlib, libpng, libjpeg-turbo, OpenJPEG and
# libdeflate (the PNG fast path's inflate) as
# position-independent static archives built by scripts/build-codecs.sh into
# build-codecs/prefix (CARZERO_CODECS_PREFIX to use another). Debian's own -dev archives are
# not used: they are built for executables and do not link into a shared object. A codec
# missing from the prefix is left out (CZ_HAVE_<CODEC>=0): that format then decodes in
# JavaScript (src/image/), and `carzero info` says which decoders the binary has.
# CARZERO_CODECS=OFF leaves them all out (to test that fallback).
set(CARZERO_CODECS_PREFIX "${CMAKE_CURRENT_SOURCE_DIR}/build-codecs/prefix" CACHE PATH
    "Prefix holding the PIC static codec archives (scripts/build-codecs.sh)")
option(CARZERO_CODECS "Link the native image codecs when their static libraries are found" ON)

set(CZ_CODEC_DEFS)
set(CZ_CODEC_LIBS)
set(CZ_CODEC_INCS)
set(CZ_CODECS_FOUND)

# cz_codec(NAME VAR ARCHIVE HEADER HEADER_DIR [REQUIRES VAR...] [DEFS def...]): finds
# <prefix>/lib/ARCHIVE and <prefix>/HEADER_DIR/HEADER (cached as CZ_<VAR>_A / CZ_<VAR>_INC); when
# both exist, and so do the codecs named after REQUIRES, adds CZ_HAVE_<VAR>=1 and DEFS, the archive
# and the header folder, and NAME to the list printed below.
function(cz_codec name var archive header header_dir)
  cmake_parse_arguments(C "" "" "REQUIRES;DEFS" ${ARGN})
  find_library(CZ_${var}_A NAMES ${archive} PATH_SUFFIXES lib PATHS ${CARZERO_CODECS_PREFIX} NO_DEFAULT_PATH)
  find_path(CZ_${var}_INC ${header} PATH_SUFFIXES ${header_dir} PATHS ${CARZERO_CODECS_PREFIX} NO_DEFAULT_PATH)
  if(NOT (CZ_${var}_A AND CZ_${var}_INC))
    return()
  endif()
  foreach(req ${C_REQUIRES})
    if(NOT (CZ_${req}_A AND CZ_${req}_INC))
      return()
    endif()
  endforeach()
  set(CZ_CODEC_DEFS ${CZ_CODEC_DEFS} CZ_HAVE_${var}=1 ${C_DEFS} PARENT_SCOPE)
  set(CZ_CODEC_LIBS ${CZ_CODEC_LIBS} ${CZ_${var}_A} PARENT_SCOPE)
  set(CZ_CODEC_INCS ${CZ_CODEC_INCS} ${CZ_${var}_INC} PARENT_SCOPE)
  set(CZ_CODECS_FOUND ${CZ_CODECS_FOUND} ${name} PARENT_SCOPE)
endfunction()

if(CARZERO_CODECS)
  # zlib first in the search (libpng needs it), last in the link line (after libpng)
  find_library(CZ_ZLIB_A NAMES libz.a PATH_SUFFIXES lib PATHS ${CARZERO_CODECS_PREFIX} NO_DEFAULT_PATH)
  find_path(CZ_ZLIB_INC zlib.h PATH_SUFFIXES include PATHS ${CARZERO_CODECS_PREFIX} NO_DEFAULT_PATH)
  cz_codec(png PNG "libpng16.a;libpng.a" png.h include REQUIRES ZLIB)
  cz_codec(jpeg JPEG libjpeg.a jpeglib.h include)
  cz_codec(openjpeg OPENJPEG libopenjp2.a openjpeg.h include/openjpeg-2.5 DEFS OPJ_STATIC)
  # libdeflate: the PNG fast path (png.cpp: 8/16-bit grey, not interlaced) inflates with it
  cz_codec(libdeflate LIBDEFLATE libdeflate.a libdeflate.h include)
  # zlib also inflates deflated DICOM data sets
  cz_codec(zlib ZLIB libz.a zlib.h include)
  list(APPEND CZ_CODEC_LIBS m)
endif()
if(CZ_CODECS_FOUND)
  message(STATUS "carzero image codecs: ${CZ_CODECS_FOUND} (${CARZERO_CODECS_PREFIX})")
else()
  message(STATUS "carzero image codecs: none in ${CARZERO_CODECS_PREFIX} "
                 "(run scripts/build-codecs.sh for native decoding; images decode in JavaScript meanwhile)")
endif()
