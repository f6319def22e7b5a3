// Bundles one Lambda function (lambda/<name>.ts) into one ES module for the nodejs24.x runtime:
//
//   node cdk/lambda-bundle.mjs <entry.ts> <outfile.mjs> [--metafile <file.json>]
//
// The SpaKnocker construct runs it for each function at synth (a child process: CDK's local
// bundling is synchronous and esbuild runs plugins only in its asynchronous API). Two plugins,
// each measured on the knock bundle (bench/lambda.mjs, issue 15):
//
// - AWS SDK schemas made tree-shakable. A client's schemas_0.js declares every operation's
//   schema of the service, and those with a member trait are written `{ [_xN]: _TSa }`: esbuild
//   must keep any statement with a computed key it cannot prove free of side effects, so every
//   EC2 operation stayed (541 KiB). The keys are string constants of the same file; written as
//   the strings themselves, esbuild drops whatever the commands the code imports do not reach
//   (EC2: 550 → 16 KiB).
// - Node's built-in modules loaded as CommonJS. An ES import of a built-in evaluates every lazy
//   export of it, and `node:http`'s include the fetch implementation (undici): ~20 ms of a cold
//   start for nothing. `process.getBuiltinModule` hands over the module without touching them.
import { readFile, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";

const SOURCE_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** `const _xN = "xmlName";` in a schemas file: the constants its computed keys name. */
const STRING_CONSTANT = /^const (_\w+) = ("[^"\\\n]*");$/gm;
/** `{ [_xN]: …` or `, [_xN]: …` — a computed key made of one identifier. */
const COMPUTED_KEY = /([{,]\s*)\[(_\w+)\](\s*:)/g;

/** Rewrites the computed keys that name a string constant of the same file as that string. */
export function inlineConstantKeys(source) {
  const constants = new Map();
  for (const m of source.matchAll(STRING_CONSTANT)) constants.set(m[1], m[2]);
  return source.replace(COMPUTED_KEY, (whole, before, name, colon) => {
    const value = constants.get(name);
    return value === undefined ? whole : `${before}${value}${colon}`;
  });
}

const sdkSchemas = {
  name: "spaknock-sdk-schemas",
  setup(b) {
    b.onLoad(
      {
        filter:
          /[\\/]node_modules[\\/]@aws-sdk[\\/][^\\/]+[\\/]dist-es[\\/](submodules[\\/][^\\/]+[\\/])?schemas[\\/]schemas_\d+\.js$/,
      },
      async (args) => ({
        contents: inlineConstantKeys(await readFile(args.path, "utf8")),
        loader: "js",
      }),
    );
  },
};

const BUILTINS = new Set(builtinModules.filter((m) => !m.startsWith("_")));

const builtinsAsCommonJs = {
  name: "spaknock-builtins-as-commonjs",
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z0-9_/]+$/ }, (args) => {
      const name = args.path.replace(/^node:/, "");
      if (!BUILTINS.has(name)) return undefined;
      return { path: name, namespace: "node-builtin" };
    });
    b.onLoad({ filter: /.*/, namespace: "node-builtin" }, (args) => ({
      contents: `module.exports = process.getBuiltinModule(${JSON.stringify(`node:${args.path}`)});`,
      loader: "js",
    }));
  },
};

/** The esbuild options of every function bundle; `metafile` for the composition. */
export function lambdaBuildOptions(entry, outfile) {
  return {
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node24",
    mainFields: ["module", "main"],
    // Minified for cold starts (less to parse). Names are not kept: keepNames wraps every
    // function the SDK creates per request in a call that redefines its name, measurable on a
    // grant's CPU (and 34 KiB); nothing reads those names (errors carry their own `name`). No
    // source map either: nothing would read it at run time.
    minify: true,
    keepNames: false,
    sourcemap: false,
    legalComments: "none",
    logLevel: "error",
    tsconfig: join(SOURCE_ROOT, "tsconfig.json"),
    // CommonJS dependencies inside an ES module still call require().
    banner: {
      js: 'const require = process.getBuiltinModule("node:module").createRequire(import.meta.url);',
    },
    plugins: [sdkSchemas, builtinsAsCommonJs],
  };
}

async function main() {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { metafile: { type: "string" } },
  });
  const [entry, outfile] = positionals;
  if (!entry || !outfile) throw new Error("usage: lambda-bundle.mjs <entry.ts> <outfile.mjs>");
  const result = await build({
    ...lambdaBuildOptions(entry, outfile),
    metafile: values.metafile !== undefined,
  });
  if (values.metafile) await writeFile(values.metafile, JSON.stringify(result.metafile));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err) => {
    process.stderr.write(`lambda-bundle: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
