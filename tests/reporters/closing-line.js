/**
 * Ends a run with one plain line, "Tests: N passed, N failed, N skipped", alone on its line on
 * stdout: the form CI reads to tell a run that executed tests from one that executed none (jest's
 * own summary, "N passed, N total", goes to stderr and is not that form).
 */
class ClosingLineReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests, numFailedTests, numPendingTests, numTodoTests } = results;
    process.stdout.write(`\nTests: ${numPassedTests} passed, ${numFailedTests} failed, ${numPendingTests + numTodoTests} skipped\n`);
  }
}

module.exports = ClosingLineReporter;
