// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Each outside library stays in its folder (STYLE.md habit 3). */
const confined = [
  { name: 'simple-git', folder: 'src/source' },
  { name: '@kubernetes/client-node', folder: 'src/kube' },
  { name: 'fastify', folder: 'src/http' },
  { name: '@bugsnag/js', folder: 'src/report' },
  { name: '@slack/webhook', folder: 'src/report' },
  { name: '@octokit/core', folder: 'src/report' },
];

/**
 * Who may import whom (README "Architecture"): the adapters and src/core never import the domain (src/deploy) or the
 * HTTP API (src/http); the domain never imports the HTTP API. Only src/wire.ts, src/app.ts and src/main.ts see all.
 */
const layers = [
  { folders: ['src/core'], banned: ['deploy', 'http', 'kube', 'source', 'registry', 'report', 'cli'] },
  { folders: ['src/config', 'src/kube', 'src/source', 'src/registry', 'src/report', 'src/prometheus'], banned: ['deploy', 'http', 'cli'] },
  { folders: ['src/deploy'], banned: ['http', 'cli'] },
];

/**
 * @param {string} folder
 * @returns {{ group: string[], message: string }[]}
 */
function layerPatterns(folder) {
  const layer = layers.find((l) => l.folders.includes(folder));
  if (layer === undefined) return [];
  return layer.banned.map((banned) => ({
    group: [`**/${banned}/*`, `../${banned}/*`],
    message: `${folder} may not import src/${banned} (layering: see README "Architecture")`,
  }));
}

/**
 * @param {string[]} files
 * @param {(c: { name: string, folder: string }) => boolean} banned
 * @param {string} [folder]
 */
function restrictImports(files, banned, folder) {
  const paths = confined.filter(banned).map(({ name, folder }) => ({ name, message: `only ${folder} may import ${name}` }));
  const patterns = folder === undefined ? [] : layerPatterns(folder);
  return { files, rules: { 'no-restricted-imports': ['error', { paths, patterns }] } };
}

const folders = [...new Set([...confined.map((c) => c.folder), ...layers.flatMap((l) => l.folders)])];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // src/: each library only in its own folder; a file's folder config comes last, so it wins.
  restrictImports(['src/**/*.ts'], () => true),
  ...folders.map((folder) => restrictImports([`${folder}/**/*.ts`], (c) => c.folder !== folder, folder)),
  restrictImports(['src/app.ts', 'src/main.ts', 'src/wire.ts'], (c) => c.name !== 'fastify'),
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: "Property[key.name='shell'][value.value=true]", message: 'no shell strings: use argument arrays' },
        { selector: "CallExpression[callee.name='execSync']", message: 'no shell strings: use argument arrays' },
        { selector: "CallExpression[callee.property.name='exec'][callee.object.name='child_process']", message: 'no shell strings' },
      ],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
