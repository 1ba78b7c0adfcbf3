#!/bin/bash
# Minimal ffmpeg 5.1.9 (Debian source) for the MSight RTSP node GPU check: NVDEC/CUDA hwaccel (libcuda dlopened at run time)
set -e
# Origin: ../shared/gpu-check/configure_line.sh of the H200 run for issue 16 (a session of this project); copied
# unchanged below. Source: `apt-get source ffmpeg` (5.1.9) into $SRC, nv-codec-headers (Debian package
# nv-codec-headers) under $WORKDIR/root and its .pc in $WORKDIR/pc; then `make -j && make install` in $BUILD.
SRC=${SRC:-${WORKDIR:-/tmp/gpu-build}/src/ffmpeg-5.1.9}
BUILD=${BUILD:-${WORKDIR:-/tmp/gpu-build}/build}
mkdir -p "$BUILD" && cd "$BUILD"
export PATH=${WORKDIR:-/tmp/gpu-build}/root/usr/bin:$PATH PKG_CONFIG_PATH=${WORKDIR:-/tmp/gpu-build}/pc
"$SRC/configure" --prefix=${WORKDIR:-/tmp/gpu-build}/inst \
  --disable-autodetect --disable-everything --disable-doc --disable-programs --enable-ffmpeg --enable-ffprobe \
  --disable-shared --enable-static --pkg-config-flags=--static --disable-debug \
  --enable-pthreads --enable-ffnvcodec --enable-cuda --enable-cuvid --enable-nvdec \
  --enable-hwaccel=h264_nvdec,hevc_nvdec \
  --enable-decoder=h264,hevc,mjpeg,rawvideo,h264_cuvid,hevc_cuvid \
  --enable-encoder=mjpeg,rawvideo,wrapped_avframe \
  --enable-parser=h264,hevc,mjpeg \
  --enable-bsf=h264_mp4toannexb,hevc_mp4toannexb,extract_extradata,null,dump_extradata \
  --enable-demuxer=rtsp,sdp,rtp,h264,hevc,mov,mjpeg,image2,image2pipe,rawvideo,mpegts \
  --enable-muxer=image2pipe,image2,mjpeg,rawvideo,rtp,rtsp,null,h264,hevc,mp4,mov,framemd5,md5 \
  --enable-protocol=rtp,udp,tcp,file,pipe \
  --enable-indev=lavfi \
  --enable-filter=settb,metadata,setpts,scale,showinfo,lutyuv,setparams,select,format,null,fps,nullsrc,testsrc,testsrc2,hwdownload,hwupload,hwupload_cuda,copy,trim,aformat,anull,atrim,aresample,signalstats,crop,psnr,ssim,split,framemd5,hflip,vflip,transpose
