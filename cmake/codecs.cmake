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
if(CARZERO_CODECS)
  set(_cz_where PATHS ${CARZERO_CODECS_PREFIX} NO_DEFAULT_PATH)
  find_library(CZ_ZLIB_A NAMES libz.a PATH_SUFFIXES lib ${_cz_where})
  find_path(CZ_ZLIB_INC zlib.h PATH_SUFFIXES include ${_cz_where})
  find_library(CZ_PNG_A NAMES libpng16.a libpng.a PATH_SUFFIXES lib ${_cz_where})
  find_path(CZ_PNG_INC png.h PATH_SUFFIXES include ${_cz_where})
  if(CZ_PNG_A AND CZ_PNG_INC AND CZ_ZLIB_A AND CZ_ZLIB_INC)
    list(APPEND CZ_CODEC_DEFS CZ_HAVE_PNG=1)
    list(APPEND CZ_CODEC_LIBS ${CZ_PNG_A})
    list(APPEND CZ_CODEC_INCS ${CZ_PNG_INC})
    list(APPEND CZ_CODECS_FOUND png)
  endif()
  find_library(CZ_JPEG_A NAMES libjpeg.a PATH_SUFFIXES lib ${_cz_where})
  find_path(CZ_JPEG_INC jpeglib.h PATH_SUFFIXES include ${_cz_where})
  if(CZ_JPEG_A AND CZ_JPEG_INC)
    list(APPEND CZ_CODEC_DEFS CZ_HAVE_JPEG=1)
    list(APPEND CZ_CODEC_LIBS ${CZ_JPEG_A})
    list(APPEND CZ_CODEC_INCS ${CZ_JPEG_INC})
    list(APPEND CZ_CODECS_FOUND jpeg)
  endif()
  find_library(CZ_OPENJP2_A NAMES libopenjp2.a PATH_SUFFIXES lib ${_cz_where})
  find_path(CZ_OPENJP2_INC openjpeg.h PATH_SUFFIXES include/openjpeg-2.5 ${_cz_where})
  if(CZ_OPENJP2_A AND CZ_OPENJP2_INC)
    list(APPEND CZ_CODEC_DEFS CZ_HAVE_OPENJPEG=1 OPJ_STATIC)
    list(APPEND CZ_CODEC_LIBS ${CZ_OPENJP2_A})
    list(APPEND CZ_CODEC_INCS ${CZ_OPENJP2_INC})
    list(APPEND CZ_CODECS_FOUND openjpeg)
  endif()
  # libdeflate: the PNG fast path (png.cpp: 8/16-bit grey, not interlaced) inflates with it
  find_library(CZ_LIBDEFLATE_A NAMES libdeflate.a PATH_SUFFIXES lib ${_cz_where})
  find_path(CZ_LIBDEFLATE_INC libdeflate.h PATH_SUFFIXES include ${_cz_where})
  if(CZ_LIBDEFLATE_A AND CZ_LIBDEFLATE_INC)
    list(APPEND CZ_CODEC_DEFS CZ_HAVE_LIBDEFLATE=1)
    list(APPEND CZ_CODEC_LIBS ${CZ_LIBDEFLATE_A})
    list(APPEND CZ_CODEC_INCS ${CZ_LIBDEFLATE_INC})
    list(APPEND CZ_CODECS_FOUND libdeflate)
  endif()
  if(CZ_ZLIB_A AND CZ_ZLIB_INC)
    # zlib also inflates deflated DICOM data sets
    list(APPEND CZ_CODEC_DEFS CZ_HAVE_ZLIB=1)
    list(APPEND CZ_CODEC_LIBS ${CZ_ZLIB_A})
    list(APPEND CZ_CODEC_INCS ${CZ_ZLIB_INC})
    list(APPEND CZ_CODECS_FOUND zlib)
  endif()
  list(APPEND CZ_CODEC_LIBS m)
endif()
if(CZ_CODECS_FOUND)
  message(STATUS "carzero image codecs: ${CZ_CODECS_FOUND} (${CARZERO_CODECS_PREFIX})")
else()
  message(STATUS "carzero image codecs: none in ${CARZERO_CODECS_PREFIX} (run scripts/build-codecs.sh for native decoding; images decode in JavaScript meanwhile)")
endif()
