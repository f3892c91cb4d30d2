// Entry for the browser suite inside `npm test` (scripts/run-tests.mjs): the reporter first, so the
// closing `N passed, N failed` line and the summary file cover these assertions too.
import "../util/report.ts";
import "./browser.test.ts";
