// Preloaded next to the ASan runtime by `npm run test:asan`: copies every UndefinedBehaviorSanitizer report
// into $PEFT_SANITIZER_REPORTS/ubsan.<pid>, where scripts/asan/test.js looks for reports after the run.
//
// Why: with g++, UBSan is a runtime of its own (libubsan) beside ASan's, and when both are loaded ASan's
// copy of __sanitizer_set_report_path wins, so UBSAN_OPTIONS=log_path is ignored and the report goes only
// to stderr. A child process whose stderr a test swallowed (a CLI run expected to fail) would then hide it.
// libubsan calls the weak hook __ubsan_on_report for each report; this library defines it. The full report
// with its stack trace still goes to stderr; the file holds the kind, the message and the source line.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

extern "C" {

// Part of libubsan's interface (sanitizer/ubsan_interface.h is not shipped with g++).
void __ubsan_get_current_report_data(const char **kind, const char **message, const char **file, unsigned *line,
                                     unsigned *column, char **memory_address);

void __ubsan_on_report() {
  const char *dir = getenv("PEFT_SANITIZER_REPORTS");
  if (!dir) return;
  const char *kind = "", *message = "", *file = "";
  unsigned line = 0, column = 0;
  char *address = nullptr;
  __ubsan_get_current_report_data(&kind, &message, &file, &line, &column, &address);

  char path[4096];
  snprintf(path, sizeof path, "%s/ubsan.%d", dir, static_cast<int>(getpid()));
  char text[8192];
  int n = snprintf(text, sizeof text, "UndefinedBehaviorSanitizer: %s\n%s:%u:%u: %s\n(full report with stack on the process's stderr)\n",
                   kind, file ? file : "?", line, column, message);
  // Plain open/write: the process is about to die, and may be in any state.
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return;
  if (n > 0) (void)!write(fd, text, static_cast<size_t>(n < static_cast<int>(sizeof text) ? n : sizeof text - 1));
  close(fd);
}
}
