/**
 * Ends a run with one plain line, "N passed, N failed, N skipped", alone on its line: the form CI
 * reads to tell a run that executed tests from one that executed none (jest's own summary,
 * "N passed, N total", is not that form). Printed on stdout here, and written to
 * $TIDEBOX_CLOSING_LINE_FILE where scripts/bootstrap.sh set it, which prints it again once jest has
 * exited so that it is the run's last line.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- jest loads reporters as CommonJS
const fs = require('fs');

class ClosingLineReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests, numFailedTests, numPendingTests, numTodoTests } = results;
    const line = `${numPassedTests} passed, ${numFailedTests} failed, ${numPendingTests + numTodoTests} skipped\n`;
    process.stdout.write(`\n${line}`);
    const file = process.env.TIDEBOX_CLOSING_LINE_FILE;
    if (file) fs.writeFileSync(file, line);
  }
}

module.exports = ClosingLineReporter;
