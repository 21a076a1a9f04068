package vision

/*
#cgo pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include "cvlog.h"
*/
import "C"

import "os"

// quietLibraryEnv keeps the media libraries OpenCV drives quiet; they read
// these when they first initialise (the first video opened), so they are
// set before that. OpenCV's own logger (which prints the "GStreamer
// warning: ..." lines) reads its variable at load time, hence the direct
// call in QuietLibraryLogs, and GLib (GStreamer's criticals) has no
// variable at all.
var quietLibraryEnv = [][2]string{
	{"OPENCV_FFMPEG_LOGLEVEL", "-8"}, // FFmpeg's av_log: AV_LOG_QUIET
	{"OPENCV_VIDEOIO_DEBUG", "0"},    // videoio backend probing
	{"GST_DEBUG", "0"},               // GStreamer debug categories
}

// QuietLibraryLogs silences OpenCV, FFmpeg and GStreamer logging for this
// process: a corrupt video otherwise prints tens of lines of library
// warnings before the real error (`magma --verbose` skips this). Variables
// the user has set are left alone, and OPENCV_LOG_LEVEL set by the user
// wins over the silencing.
func QuietLibraryLogs() {
	for _, kv := range quietLibraryEnv {
		if _, set := os.LookupEnv(kv[0]); !set {
			_ = os.Setenv(kv[0], kv[1])
		}
	}
	if _, set := os.LookupEnv("OPENCV_LOG_LEVEL"); !set {
		C.magma_cv_set_log_level(0) // LOG_LEVEL_SILENT
	}
	// GStreamer reports a corrupt file's pipeline teardown as
	// GStreamer-CRITICAL messages through GLib, which no variable silences.
	C.magma_quiet_glib()
}
