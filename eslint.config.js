// ESLint flat config: typescript-eslint's type-aware rules over every TypeScript file of the
// project (lib, brokers, test, bench, examples), plain rules over the few JavaScript files.
// Formatting is Prettier's job: eslint-config-prettier turns off every rule that would fight it,
// and the only layout rule kept on is max-len, for what Prettier cannot wrap.
import eslint from "@eslint/js";
import stylistic from "@stylistic/eslint-plugin";
import prettier from "eslint-config-prettier";
import { defineConfig } from "eslint/config";
import globals from "globals";
import tseslint from "typescript-eslint";

/** Why the timer rules exist, shown with each report. */
const TIMER_SEAM = "library code takes its timers from the Clock (lib/clock.ts), so tests can drive them";
const TIMER_FUNCTIONS = ["setTimeout", "setInterval", "clearTimeout", "clearInterval"];

export default defineConfig(
  { ignores: ["dist/", "coverage/", "bench/results/", "scratch/"] },
  { linterOptions: { reportUnusedDisableDirectives: "error" } },

  eslint.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Promise mistakes: the bugs a job library cannot afford (all three are in recommended; kept explicit).
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      // A switch without a default must name every member of the union; a default covers the rest.
      "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
      // `typeof import("bullmq")` types a module that bench/ loads with a dynamic import.
      "@typescript-eslint/consistent-type-imports": ["error", { disallowTypeAnnotations: false }],
      "@typescript-eslint/no-unused-vars": [
        "error",
        {
          argsIgnorePattern: "^_",
          varsIgnorePattern: "^_",
          caughtErrorsIgnorePattern: "^_",
          destructuredArrayIgnorePattern: "^_",
          ignoreRestSiblings: true,
        },
      ],
      // recommended's options, plus Job, whose toString() is meant for messages ("Job(id, task)").
      "@typescript-eslint/restrict-template-expressions": [
        "error",
        {
          allowAny: true,
          allowBoolean: true,
          allowNullish: true,
          allowNumber: true,
          allowRegExp: true,
          allow: [
            { from: "lib", name: ["Error", "URL", "URLSearchParams"] },
            { from: "file", name: "Job", path: "lib/jobs.ts" },
          ],
        },
      ],
      // An options interface that only extends another keeps a name of its own to grow later.
      "@typescript-eslint/no-empty-object-type": ["error", { allowInterfaces: "with-single-extends" }],
      // Off: `async` without `await` is how a synchronous broker method (MemoryBroker) returns a
      // Promise and turns a throw into a rejection; the promise rules above catch the real mistakes.
      "@typescript-eslint/require-await": "off",
    },
  },

  // The library writes to the console only through its default logger.
  {
    files: ["lib/**/*.ts", "brokers/**/*.ts"],
    ignores: ["lib/logger.ts"],
    rules: { "no-console": "error" },
  },

  // The timer seam: only lib/clock.ts may touch real timers.
  {
    files: ["lib/**/*.ts", "brokers/**/*.ts"],
    ignores: ["lib/clock.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: ["node:timers", "node:timers/promises", "timers", "timers/promises"].map((name) => ({
            name,
            message: TIMER_SEAM,
          })),
        },
      ],
      "no-restricted-globals": ["error", ...TIMER_FUNCTIONS.map((name) => ({ name, message: TIMER_SEAM }))],
      "no-restricted-properties": [
        "error",
        ...TIMER_FUNCTIONS.map((property) => ({
          object: "globalThis",
          property,
          message: TIMER_SEAM,
        })),
      ],
    },
  },

  // JavaScript files (configs, scripts, the worker-process fixture) are not in a tsconfig project.
  {
    files: ["**/*.js", "**/*.mjs", "**/*.cjs"],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
  // The dashboard's page script runs in the browser.
  {
    files: ["dashboard/assets/**/*.js"],
    languageOptions: { globals: globals.browser, sourceType: "module" },
  },

  prettier,

  // After eslint-config-prettier, which turns max-len off. Prettier wraps code at 120 columns but not
  // comments, strings, template literals or regexes: this refuses the comments it leaves long.
  {
    plugins: { "@stylistic": stylistic },
    rules: {
      "@stylistic/max-len": [
        "error",
        {
          code: 120,
          ignoreUrls: true,
          ignoreStrings: true,
          ignoreTemplateLiterals: true,
          ignoreRegExpLiterals: true,
        },
      ],
    },
  },
);
