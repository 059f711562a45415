// The environment a node process needs to run the sanitized addon (build-asan/peft_native.node).
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');

/** The sanitized addon scripts/asan/build.js writes. */
const binary = path.join(root, 'build-asan', 'peft_native.node');

/** Copies UBSan reports into files (scripts/asan/ubsan_report.cpp); build.js builds it beside the addon. */
const ubsanHook = path.join(root, 'build-asan', 'libubsan_report.so');

/** The ASan runtime of the compiler that built the addon (g++ unless CXX says otherwise). */
function asanRuntime() {
  const cxx = process.env.CXX || 'g++';
  const lib = execFileSync(cxx, ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
  // An unknown name is echoed back bare: the compiler has no ASan runtime.
  if (!path.isAbsolute(lib) || !fs.existsSync(lib)) throw new Error(`${cxx} has no libasan.so (install libasan for ${cxx})`);
  return fs.realpathSync(lib);
}

/**
 * Variables for a node process (and every child it spawns, which inherits them) that loads the
 * sanitized addon. Reports go to files under dir (one per process, suffixed with its pid), so a
 * report from a child process that a test expected to fail for another reason is still seen.
 */
function asanEnv(dir) {
  return {
    // node itself is not instrumented, so the ASan runtime must be the first library loaded; it cannot
    // come in later with the addon's dlopen. The UBSan hook must be global too for libubsan to find it.
    LD_PRELOAD: `${asanRuntime()} ${ubsanHook}`,
    PEFT_SANITIZER_REPORTS: dir,
    ASAN_OPTIONS: [
      // node and V8 keep allocations alive until exit on purpose (isolates, code space, caches) and
      // skip freeing them at shutdown, so LeakSanitizer would report thousands of non-bugs at every
      // exit. Leaks of our own are checked by the resident-memory test instead.
      'detect_leaks=0',
      `log_path=${path.join(dir, 'asan')}`,
      // A distinct exit code tells a sanitizer abort apart from an ordinary failure.
      'exitcode=86',
      'halt_on_error=1',
      // abort() (a failed _GLIBCXX_ASSERTIONS check, std::terminate) becomes a report with a stack.
      'handle_abort=1',
      // V8 installs its own SIGSEGV handler (WebAssembly out-of-bounds traps); let it keep it.
      'allow_user_segv_handler=1',
    ].join(':'),
    // (log_path would be ignored here: see scripts/asan/ubsan_report.cpp.)
    UBSAN_OPTIONS: ['print_stacktrace=1', 'halt_on_error=1', 'exitcode=87'].join(':'),
    PEFT_NATIVE_BINARY: binary,
  };
}

/** The sanitizer reports written under dir: [{ file, text }]. */
function readReports(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .sort()
    .map((name) => ({ file: path.join(dir, name), text: fs.readFileSync(path.join(dir, name), 'utf8') }));
}

/** Where sanitized processes write their reports (scripts/asan/test.js and run.js clear it first). */
const reportDir = path.join(root, 'build-asan', 'reports');

/**
 * Runs command with the sanitized addon and returns the exit code to use: 1 when any process wrote a
 * sanitizer report (printed here), else the command's own.
 */
function runSanitized(label, command, args) {
  if (!fs.existsSync(binary)) {
    console.error(`${path.relative(root, binary)} is missing; run npm run build:asan`);
    return 1;
  }
  fs.rmSync(reportDir, { recursive: true, force: true });
  fs.mkdirSync(reportDir, { recursive: true });
  const started = Date.now();
  const r = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, ...asanEnv(reportDir) } });
  const minutes = ((Date.now() - started) / 60000).toFixed(1);

  const reports = readReports(reportDir);
  for (const { file, text } of reports) console.error(`\n===== ${path.relative(root, file)} =====\n${text}`);
  if (reports.length > 0) {
    console.error(`\n${label}: ${reports.length} sanitizer report(s) (above, and in ${path.relative(root, reportDir)}/); failing.`);
    return 1;
  }
  if (r.error) console.error(`${label}: ${r.error.message}`);
  if (r.signal) console.error(`${label}: killed by ${r.signal}`);
  console.error(`${label}: ${r.status === 0 ? 'clean' : `exited with ${r.status}`} after ${minutes} min`);
  return r.status ?? 1;
}

module.exports = { binary, asanEnv, readReports, runSanitized };
