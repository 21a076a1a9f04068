#include <dlfcn.h>
#include <opencv2/core/utils/logger.hpp>
#include "cvlog.h"

void magma_cv_set_log_level(int level) {
    cv::utils::logging::setLogLevel(static_cast<cv::utils::logging::LogLevel>(level));
}

// GLib's g_log_set_default_handler, found at run time: GLib is loaded with
// OpenCV's GStreamer backend, but the build needs no GLib headers.
typedef void (*glog_func)(const char *domain, int level, const char *msg, void *data);
typedef glog_func (*set_default_handler_func)(glog_func, void *);

static void drop_glib_message(const char *, int, const char *, void *) {}

int magma_quiet_glib(void) {
    void *f = dlsym(RTLD_DEFAULT, "g_log_set_default_handler");
    if (f == nullptr) {
        return 0;
    }
    reinterpret_cast<set_default_handler_func>(f)(drop_glib_message, nullptr);
    return 1;
}
