#ifndef MAGMA_CVLOG_H
#define MAGMA_CVLOG_H
#ifdef __cplusplus
extern "C" {
#endif
// magma_cv_set_log_level sets OpenCV's global log level
// (0 silent, 1 fatal, 2 error, 3 warning, 4 info, 5 debug, 6 verbose).
void magma_cv_set_log_level(int level);
// magma_quiet_glib drops GLib's (GStreamer's) log messages; 0 when GLib is
// not loaded.
int magma_quiet_glib(void);
#ifdef __cplusplus
}
#endif
#endif
