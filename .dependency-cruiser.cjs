// Import rules, checked by `npm run deps` (dependency-cruiser). The library is lib/ (the engine and
// the Broker contract) plus brokers/ (the storage behind it): brokers may import lib/, lib/ imports
// brokers/ only in the package entry (which exports both brokers), and neither ships an import of
// a dev tool. cli/ (the `chard` binary) stands on both and ships too; the library never imports it.
// test/, bench/ and examples/ may import anything.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment:
        "A cycle makes module load order matter and the layers impossible to tell apart: break it. " +
        "Cycles through `import type` are allowed: TypeScript erases those imports, so nothing loads in a loop.",
      from: {},
      to: {
        circular: true,
        dependencyTypesNot: ["type-only"],
        viaOnly: { dependencyTypesNot: ["type-only"] },
      },
    },
    {
      name: "lib-not-to-brokers",
      severity: "error",
      comment:
        "lib/ talks to storage through the Broker interface (lib/broker.ts); only the package entry " +
        "(lib/index.ts) imports brokers/, to export them.",
      from: { path: "^lib/", pathNot: "^lib/index\\.ts$" },
      to: { path: "^brokers/" },
    },
    {
      name: "library-not-to-cli",
      severity: "error",
      comment: 'The command line (cli/) is the package\'s bin: `import { Engine } from "chard"` must never load it.',
      from: { path: "^(lib|brokers)/" },
      to: { path: "^cli/" },
    },
    {
      name: "library-not-to-integrations",
      severity: "error",
      comment:
        "The integrations (postgres/, dashboard/, metrics/, otel/) are subpath exports with optional peers: " +
        '`import { Engine } from "chard"` must never load them, so lib/, brokers/ and cli/ never import them.',
      from: { path: "^(lib|brokers|cli)/" },
      to: { path: "^(postgres|dashboard|metrics|otel)/" },
    },
    {
      name: "integrations-on-the-library-only",
      severity: "error",
      comment:
        "An integration stands on lib/ (the engine, its operations API, middleware and signals), never on another " +
        "integration, nor on a broker's internals: each can be imported alone.",
      from: { path: "^(postgres|dashboard|metrics|otel)/" },
      to: { path: "^(postgres|dashboard|metrics|otel|brokers|cli)/", pathNot: "^$1/" },
    },
    {
      name: "library-not-to-dev-dependencies",
      severity: "error",
      comment:
        "lib/, brokers/ and cli/ ship to users, who do not install devDependencies (bullmq, bee-queue, vitest...): " +
        "move the package to dependencies, or the import out of the library.",
      from: { path: "^(lib|brokers|cli)/" },
      to: { dependencyTypes: ["npm-dev"] },
    },
    {
      name: "library-not-to-tests-or-tools",
      severity: "error",
      comment: "lib/, brokers/ and cli/ are published alone: they cannot import test/, bench/, examples/ or scripts/.",
      from: { path: "^(lib|brokers|cli)/" },
      to: { path: "^(test|bench|examples|scripts)/" },
    },
    {
      name: "not-to-unresolvable",
      severity: "error",
      comment: "An import that resolves to no file or package.",
      // The worker-process fixture runs the built library: dist/ exists only after a build.
      from: { pathNot: "^test/fixtures/" },
      to: { couldNotResolve: true },
    },
    {
      name: "no-non-package-json",
      severity: "error",
      comment: "A package that is not in package.json: it works here only because something else installed it.",
      from: {},
      // An optional peer (chard/postgres's kysely, drizzle-orm) may also read as npm-no-pkg.
      to: { dependencyTypes: ["npm-no-pkg", "npm-unknown"], dependencyTypesNot: ["npm-peer"] },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // Build output (imported by the worker-process fixture): checked as its sources.
    exclude: { path: "^dist/" },
    // Type-only imports count: a type from a dev dependency in lib/ would break users' type checks.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      mainFields: ["module", "main", "types", "typings"],
    },
  },
};
